/* main.c: written by the core helper */
#include "serve/http.h"
int main(void) { return 0; }
