/* phases.h: what the checking phases share (build.c, rules.c, shapes.c,
 * names.c, plan.c, train.c, driven by check.c).  Not used by emitters. */
#ifndef NNGEN_PHASES_H
#define NNGEN_PHASES_H

#include "nngen.h"
#include "ops/op.h"

/* Limits on the size of the expanded network, so that no spec (nested
 * repeats, blocks that use other blocks twice, shared modules used in
 * many places) can make the checker run for hours or exhaust memory. */
#define MAX_MODULES (1 << 20)       /* module instances, and module uses in the forward pass */
#define MAX_INIT_VISITS (1 << 24)   /* modules visited by all init rules together */
#define MAX_INIT_STEPS (1 << 23)    /* initializer calls in the init plan */
#define MAX_PATH_LEN 512            /* characters of a module path ("0.block1.2") */
#define MAX_PATH_BYTES (64 << 20)   /* all module paths of the forward pass together */

/* Names of a YAML mapping (blocks:, shared:) looked up by hash. */
typedef struct namemap {
    const ynode *map;
    int *slot;                  /* key index + 1; 0 is empty */
    size_t cap;
} namemap;
void namemap_init(namemap *nm, const ynode *map);
int namemap_find(const namemap *nm, const char *k);   /* key index, or -1 */

/* build.c: module expressions -> module instances */
typedef struct ctx {
    program *p;
    ynode *blocks;              /* mapping or NULL */
    ynode *shared;              /* mapping or NULL */
    namemap block_ix, shared_ix;
    int *block_uses;            /* instances made of each block */
    int *shared_height;         /* module nesting height of each shared module */
    /* blocks being instantiated: a block whose body is just another block's
     * name nests no module, so this bound is separate from MAX_NESTING */
    const char *stack[2 * MAX_NESTING + 1];
    int nstack;
    int depth;                  /* modules enclosing the one being built */
    int maxdepth;               /* deepest module nesting reached (for shared heights) */
    int nshared_built;          /* shared modules constructed so far */
    int cap_modules;
} ctx;
module *build(ctx *c, const ynode *n);
module *instantiate_block(ctx *c, int bi, loc use);
void check_names(ctx *c, const ynode *map, const char *what);
const char *join(const char *a, const char *b);       /* "a.b", or b when a is "" */
const char *key_list(const ynode *map);               /* "'a', 'b'" (at most 20) */

/* rules.c: init: lists */
rule *parse_rules(const ynode *n, int *count);

/* shapes.c: the forward pass: shapes, values and ops */
void check_shapes(program *p, const ynode *shared_keys, const ynode *model);

/* names.c: canonical paths, tensors, the state dict, frozen */
void name_program(program *p);

/* plan.c: the init sequence in PyTorch's construction order */
void plan_init(program *p, const ynode *top_rules);

/* train.c: loss and optimizer */
void parse_train(program *p, const ynode *n);

#endif
