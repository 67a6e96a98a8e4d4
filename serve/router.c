/* router.c: written by the core helper */
#include "serve/http.h"
