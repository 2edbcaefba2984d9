/* Free lists for the blocks nghttp2 allocates per stream and frame (~8 per call, all freed
 * when the stream closes), so that they skip malloc's bins: an nghttp2_mem for the
 * sessions of one thread. grpc.c gives one to each worker's server sessions, forward.c
 * one to each worker's client sessions (bench/NOTES.md, sessions 6 and 7: malloc/free
 * were ~5 % of a forwarding node's CPU). Not thread-safe: a pool and the sessions that use
 * it belong to one thread. */
#ifndef SEQ_NGMEM_H
#define SEQ_NGMEM_H

#include <nghttp2/nghttp2.h>

typedef struct seq_ngmem seq_ngmem;

/* A pool, or NULL (out of memory). */
seq_ngmem *seq_ngmem_new(void);
/* The allocator for nghttp2_session_*_new3; valid while the pool lives. */
nghttp2_mem *seq_ngmem_get(seq_ngmem *m);
/* Frees the pool and the blocks it keeps; every session using it must be deleted first. */
void seq_ngmem_free(seq_ngmem *m);

#endif
