/*
 * views.h - human renderings shared by several commands: the versions
 * table (ls, show), the alias history table (show, history) and residency
 * words.
 */
#ifndef MCACHE_TOOLS_VIEWS_H
#define MCACHE_TOOLS_VIEWS_H

#include <jansson.h>

#include "tools/arena_view.h"
#include "tools/cli.h"

/*
 * MODEL (if with_model) VERSION ALIASES SIZE FORMAT STATUS RESIDENT PUSHED,
 * one row per version, residency looked up in ar (may be unattached).
 */
void view_versions(const struct cli *c, struct mc_registry *r,
                   const struct mc_reg_version *const *vs, size_t n, struct cli_arena *ar,
                   bool with_model, int indent);

/* WHEN ALIAS ACTION FROM TO GEN BY, from a jv_moves() array. */
void view_history(json_t *moves, int indent);

/* The RESIDENT column for a residency string: yes, no, loading, failed, ? */
const char *residency_word(const char *residency);

#endif
