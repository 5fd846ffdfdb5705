/*
 * Cache-line cuts, shared by plans (src/core/run.c) and the thread pool's
 * first-touch split (src/pool/rmsfuse_pool.c): pieces of an array that
 * start on a 64-byte line boundary never have two threads write one line.
 */
#ifndef RMSFUSE_CORE_LINES_H
#define RMSFUSE_CORE_LINES_H

#include <stddef.h>
#include <stdint.h>

#define RMSFUSE_LINE_BYTES 64u

/* Elements of `elem` bytes to skip from p so that it starts a cache line;
 * 0 when p is not even element-aligned (then no cut can be line-aligned). */
static inline size_t rmsfuse_to_line(const void *p, size_t elem)
{
    const uintptr_t mis = (uintptr_t)p % RMSFUSE_LINE_BYTES;
    return (mis % elem) ? 0 : ((RMSFUSE_LINE_BYTES - mis) % RMSFUSE_LINE_BYTES) / elem;
}

#endif /* RMSFUSE_CORE_LINES_H */
