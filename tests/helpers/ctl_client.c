/*
 * ctl_client.c - send one control request to mcached and print the answer;
 * for tests that need another uid (setpriv) or raw access to the protocol.
 *
 *   ctl_client SOCKET OP [ARGS...]   prints "STATUS BODY", exits 0 if STATUS is 0,
 *                                    1 if mcached answered with an error, 2 otherwise
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "index/proto.h"
#include "mcache.h"

int main(int argc, char **argv)
{
    int fd, status = 0;
    char *body = NULL;

    if (argc < 3) {
        fprintf(stderr, "usage: ctl_client SOCKET OP [ARGS...]\n");
        return 2;
    }
    if (mc_ctl_connect(argv[1], &fd) != 0 ||
        mc_ctl_call(fd, argv[2], (unsigned)(argc - 3), (const char *const *)argv + 3, 10000,
                    &status, &body) != 0) {
        printf("%d %s\n", -100, mc_last_error());
        return 2;
    }
    printf("%d %s\n", status, body);
    free(body);
    close(fd);
    return status ? 1 : 0;
}
