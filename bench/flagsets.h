/*
 * The flag sets benchmarked: one list, read by the benchmark (rmsfuse_bench.c:
 * the configuration of each) and by the peers (peer_loop.c: the library
 * variant each one compiles).  Adding a flag set is a line here.
 *
 *   X(rule, name, config, variant)
 *
 * rule     rmsprop, adagrad, sgd or adam: the rule's public functions are
 *          rmsfuse_<rule>_*, its element math src/rules/<rule>.h
 * name     the flag set's name in the benchmark names: <rule>/<name>/...
 * config   statements that change `c`, the rule's PyTorch preset
 *          rmsfuse_<rule>_pytorch(BENCH_LR), into this flag set; flags are
 *          added with |=, so the preset's RMSFUSE_FLUSH_SUBNORMAL stays
 *          set: the library runs every flag set as users get it
 * variant  the library's variant code for that configuration without
 *          RMSFUSE_FLUSH_SUBNORMAL (src/rules/<rule>.h), which the peers
 *          specialise their loop for as a user's loop is written for one
 *          configuration: the peers are the exact IEEE loop (no flush),
 *          the one a user writes; only peer_loop.c expands it.  The
 *          start-up check (rmsfuse_bench.c) fails if it does not give the
 *          bits of the library's configuration with the flag cleared, on
 *          dense state and on subnormal state with zero gradients.
 *
 * Each flag set's arrays and bytes per element are derived from the
 * configuration (rmsfuse_bench.c, used_arrays), not listed here.
 */
#ifndef RMSFUSE_BENCH_FLAGSETS_H
#define RMSFUSE_BENCH_FLAGSETS_H

/* The learning rate of every flag set (small, so that parameters stay in
 * range over millions of steps with a gradient that never changes). */
#define BENCH_LR 1e-4

#define BENCH_FLAGSETS(X)                                                                              \
    X(rmsprop, plain, , 0u)                                                                            \
    X(rmsprop, momentum, c.momentum = 0.9;, RMSPROP_V_MOM)                                             \
    X(rmsprop, centered, c.flags |= RMSFUSE_CENTERED;, RMSPROP_V_CENTERED)                             \
    X(rmsprop, centered_momentum, c.momentum = 0.9; c.flags |= RMSFUSE_CENTERED;,                      \
      RMSPROP_V_CENTERED | RMSPROP_V_MOM)                                                              \
    X(adagrad, torch, , 0u)                                                                            \
    X(sgd, plain, , 0u)                                                                                \
    X(sgd, momentum, c.momentum = 0.9;, SGD_V_MOM)                                                     \
    X(sgd, nesterov, c.momentum = 0.9; c.flags |= RMSFUSE_NESTEROV;, SGD_V_MOM | SGD_V_NESTEROV)       \
    X(adam, torch, , 0u)                                                                               \
    X(adam, adamw, c = rmsfuse_adamw_pytorch(BENCH_LR);, ADAM_V_DECOUPLED)                             \
    X(adam, amsgrad, c.flags |= RMSFUSE_AMSGRAD;, ADAM_V_AMSGRAD)

/* Arrays per tensor, at most (param, grad and up to three state arrays),
 * in the order of the rule's step arguments, which is the library's slot
 * order (src/rules/<rule>.h). */
#define BENCH_SLOTS 5

#endif /* RMSFUSE_BENCH_FLAGSETS_H */
