/*
 * name.c - validation of model names, alias names and metadata keys, and
 * the quoting every message in index/ uses to show a bad value safely.
 */
#include "index/name.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "index/semver.h"

#define NAME_RULE                                                                                  \
    "a model name uses letters, digits, '.', '_' and '-', with at most one '/' between a "         \
    "namespace and the model, e.g. resnet-50 or org/llama-3.1; at most 128 bytes"
#define ALIAS_RULE                                                                                 \
    "an alias starts with a letter and continues with letters, digits, '_', '-' or '.', at most "  \
    "64 bytes, e.g. production or canary-eu"
#define KEY_RULE                                                                                   \
    "a key starts with a letter and continues with letters, digits, '_', '-', '.', '/' or ':', "   \
    "at most 64 bytes, e.g. accuracy or eval/top-1"

const char *mc_quote(char *buf, size_t size, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t w = 0, i;

    if (size < 8) {
        if (size > 0)
            buf[0] = '\0';
        return buf;
    }
    if (s == NULL) {
        snprintf(buf, size, "(null)");
        return buf;
    }
    buf[w++] = '"';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[4];
        size_t k = 0;

        if (c == '"' || c == '\\') {
            tmp[k++] = '\\';
            tmp[k++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            tmp[k++] = '\\';
            tmp[k++] = 'x';
            tmp[k++] = hex[c >> 4];
            tmp[k++] = hex[c & 15];
        } else {
            tmp[k++] = (char)c;
        }
        /* keep room for a closing quote, "..." and the NUL */
        if (w + k + 5 > size)
            break;
        memcpy(buf + w, tmp, k);
        w += k;
    }
    if (i < len) {
        memcpy(buf + w, "...", 3);
        w += 3;
    }
    buf[w++] = '"';
    buf[w] = '\0';
    return buf;
}

/* The quoted value, made only when a message needs it. */
#define Q(buf, s) mc_quote(buf, sizeof(buf), s, strlen(s))

static bool is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
    return is_letter(c) || (c >= '0' && c <= '9');
}

static bool is_ctl(char c)
{
    return (unsigned char)c < 0x20 || c == 0x7f;
}

int mc_name_check(const char *name)
{
    char q[MC_QUOTE_MAX], b[MC_QUOTE_MAX];
    size_t len, i, slashes = 0;

    if (name == NULL || name[0] == '\0')
        return mc_err(MC_EINVAL, "the model name is empty (%s)", NAME_RULE);
    len = strlen(name);
    if (len > MC_NAME_MAX)
        return mc_err(MC_EINVAL, "model name %s is %zu bytes long (%s)", Q(q, name), len,
                      NAME_RULE);
    for (i = 0; i < len; i++) {
        char c = name[i];

        if (is_ctl(c))
            return mc_err(MC_EINVAL,
                          "model name %s contains the control byte %s at offset %zu (%s)",
                          Q(q, name), mc_quote(b, sizeof(b), name + i, 1), i, NAME_RULE);
        if (c == '/') {
            slashes++;
            continue;
        }
        if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
            return mc_err(MC_EINVAL, "model name %s contains %s at offset %zu (%s)", Q(q, name),
                          mc_quote(b, sizeof(b), name + i, 1), i, NAME_RULE);
    }
    if (name[0] == '/')
        return mc_err(MC_EINVAL, "model name %s starts with '/': it is not a path (%s)", Q(q, name),
                      NAME_RULE);
    if (name[len - 1] == '/')
        return mc_err(MC_EINVAL, "model name %s ends with '/' (%s)", Q(q, name), NAME_RULE);
    if (slashes > 1)
        return mc_err(MC_EINVAL,
                      "model name %s has %zu '/'; only one namespace level is allowed (%s)",
                      Q(q, name), slashes, NAME_RULE);
    if (strstr(name, "//"))
        return mc_err(MC_EINVAL, "model name %s has an empty part (%s)", Q(q, name), NAME_RULE);
    if (strstr(name, ".."))
        return mc_err(MC_EINVAL, "model name %s contains \"..\" (%s)", Q(q, name), NAME_RULE);
    for (i = 0; i < len; i++) {
        if ((i == 0 || name[i - 1] == '/') && (name[i] == '.' || name[i] == '-'))
            return mc_err(MC_EINVAL, "model name %s has a part that starts with '%c' (%s)",
                          Q(q, name), name[i], NAME_RULE);
    }
    if (slashes) {
        /* STORE/models/org/1.0.0/ would be both a version and a model directory */
        const char *part = strchr(name, '/') + 1;

        if (mc_semver_valid(part, strlen(part)))
            return mc_err(MC_EINVAL,
                          "model name %s: the part after '/' is a version number, "
                          "which would clash with the store's version directories; "
                          "choose another name (%s)",
                          Q(q, name), NAME_RULE);
    }
    return 0;
}

int mc_alias_check(const char *alias)
{
    char q[MC_QUOTE_MAX], b[MC_QUOTE_MAX];
    size_t len, i;

    if (alias == NULL || alias[0] == '\0')
        return mc_err(MC_EINVAL, "the alias name is empty (%s)", ALIAS_RULE);
    len = strlen(alias);
    if (len > MC_ALIAS_MAX)
        return mc_err(MC_EINVAL, "alias %s is %zu bytes long (%s)", Q(q, alias), len, ALIAS_RULE);
    if (!is_letter(alias[0]))
        return mc_err(MC_EINVAL, "alias %s does not start with a letter (%s)", Q(q, alias),
                      ALIAS_RULE);
    for (i = 1; i < len; i++) {
        char c = alias[i];

        if (!is_alnum(c) && c != '_' && c != '-' && c != '.')
            return mc_err(MC_EINVAL, "alias %s contains %s at offset %zu (%s)", Q(q, alias),
                          mc_quote(b, sizeof(b), alias + i, 1), i, ALIAS_RULE);
    }
    if (strcmp(alias, "latest") == 0)
        return mc_err(MC_EINVAL,
                      "\"latest\" is reserved for the highest released version and "
                      "cannot be an alias; choose another name (%s)",
                      ALIAS_RULE);
    if (mc_range_valid(alias))
        return mc_err(MC_EINVAL,
                      "alias %s would read as a version range; choose a name that "
                      "does not, e.g. add a word (%s)",
                      Q(q, alias), ALIAS_RULE);
    return 0;
}

int mc_key_check(const char *what, const char *key)
{
    char q[MC_QUOTE_MAX], b[MC_QUOTE_MAX];
    size_t len, i;

    if (key == NULL || key[0] == '\0')
        return mc_err(MC_EINVAL, "a %s key is empty (%s)", what, KEY_RULE);
    len = strlen(key);
    if (len > MC_META_KEY_MAX)
        return mc_err(MC_EINVAL, "%s key %s is %zu bytes long (%s)", what, Q(q, key), len,
                      KEY_RULE);
    if (!is_letter(key[0]))
        return mc_err(MC_EINVAL, "%s key %s does not start with a letter (%s)", what, Q(q, key),
                      KEY_RULE);
    for (i = 1; i < len; i++) {
        char c = key[i];

        if (!is_alnum(c) && c != '_' && c != '-' && c != '.' && c != '/' && c != ':')
            return mc_err(MC_EINVAL, "%s key %s contains %s at offset %zu (%s)", what, Q(q, key),
                          mc_quote(b, sizeof(b), key + i, 1), i, KEY_RULE);
    }
    return 0;
}
