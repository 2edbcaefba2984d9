/* Load history of one sequence: every committed batch load, in commit order (which is
 * generation order: a load must be above every generation ever committed), with when it
 * was committed, undone by a rollback, replaced (owning no coverage any more) and
 * reclaimed (its data deleted). The coverage of any moment is recomputed from it: that
 * is what rollback (PRODUCT.md "Rollback") and as-of reads ("As of T") are made of.
 * Pure: times are arguments; storage persists the records (storage/keys.h 'm' "hist")
 * and installs a seq_hist per sequence in each committed view.
 *
 *   in effect at t:  committed_ms <= t and (undone_ms == 0 or undone_ms > t)
 *   coverage at t:   the loads in effect at t applied in commit order, each taking its
 *                    range [start_ms, end_ms) from the older ones ("each bucket belongs to
 *                    the newest committed generation whose range contains it")
 *   generation at t: the newest load in effect (0: none); watermark: their largest end */
#ifndef SEQ_HISTORY_H
#define SEQ_HISTORY_H

#include <stdint.h>

#include "merge.h"

#define SEQ_HIST_NOW INT64_MAX    /* `at` for the state now, undone loads excluded */
#define SEQ_KEEP_GENERATIONS_DEFAULT 2

typedef struct {
    uint64_t gen;
    int64_t start_ms, end_ms;
    uint64_t files, users, events; /* the load's counts (a repeated load returns them) */
    int64_t committed_ms;
    int64_t undone_ms;    /* 0: not undone */
    int64_t replaced_ms;  /* 0: owns coverage now; else since when it owns none */
    int64_t reclaimed_ms; /* 0: its data is kept */
} seq_load_rec;

int seq_hist_in_effect(const seq_load_rec *l, int64_t at);

/* The coverage the loads in effect at `at` make, into out (room for 2 n + 1 segments),
 * sorted; *gen and *wm receive the generation and watermark. Returns the segment count,
 * or -1 on OOM. */
int64_t seq_hist_cover(const seq_load_rec *loads, uint32_t n, int64_t at, seq_cov_seg *out,
                       uint64_t *gen, int64_t *wm);

/* ---- changes to a record list (the caller persists the result) ---- */

/* After a change at `now`: loads owning no coverage now get replaced_ms = now (those
 * replaced earlier keep their time), loads owning some get 0. SEQ_OK or SEQ_EINTERNAL. */
int seq_hist_mark_replaced(seq_load_rec *loads, uint32_t n, int64_t now);

/* Reclaims what the contract lets go: a replaced load's data is kept while it is one of
 * the `keep` most recently replaced loads or was replaced less than history_ms ago.
 * Sets reclaimed_ms = now on the others not reclaimed yet; returns how many it set. */
uint32_t seq_hist_reclaim(seq_load_rec *loads, uint32_t n, int64_t now, uint32_t keep,
                          int64_t history_ms);

/* RollbackBatch(to) on the loads in effect (to = 0: undo the newest). On SEQ_OK the loads
 * to undo have undone_ms = now and *gen is the generation in effect after it; 1: a no-op
 * (`to` is the newest load in effect; *gen = to); SEQ_EPRECONDITION with a message:
 * `to` never committed or undone, nothing to undo, or a load the rollback would bring
 * back has had its data reclaimed. Nothing changes unless SEQ_OK. */
int seq_hist_rollback(seq_load_rec *loads, uint32_t n, uint64_t to, int64_t now, uint64_t *gen,
                      char *err, size_t errlen);

/* ---- the states over time (immutable once built; installed with each view) ---- */
typedef struct seq_hist seq_hist;

typedef struct {
    uint64_t generation;
    int64_t watermark_ms;
    const seq_cov_seg *cov;
    uint32_t n_cov;
} seq_hist_state;

/* Builds the state of every moment from the records (copied). max_gen: the highest
 * generation ever committed (records may have been dropped); start_ms: no state before
 * it is known (the history began there). The state now is the last one (the state at
 * the newest commit or undo). NULL on OOM. */
seq_hist *seq_hist_new(const seq_load_rec *loads, uint32_t n, uint64_t max_gen, int64_t start_ms);
seq_hist *seq_hist_ref(seq_hist *h); /* another reference (views share one table) */
void seq_hist_free(seq_hist *h);      /* drops a reference */
const seq_load_rec *seq_hist_loads(const seq_hist *h, uint32_t *n);
uint64_t seq_hist_max_gen(const seq_hist *h);
int64_t seq_hist_start(const seq_hist *h);

/* The state as committed at t (SEQ_HIST_NOW: now). SEQ_OK, or SEQ_EPRECONDITION when
 * the state at t is not answerable exactly: t before the start, or a load that owned
 * coverage at t has had its data reclaimed; *oldest then receives the oldest time from
 * which every t is answerable. The state points into h. */
int seq_hist_at(const seq_hist *h, int64_t t, seq_hist_state *out, int64_t *oldest);

/* The state now (the last one, whatever the clock says). Points into h. */
void seq_hist_current(const seq_hist *h, seq_hist_state *out);

/* Oldest t from which seq_hist_at answers every t (the start, or just after the last
 * moment a reclaimed load owned coverage). */
int64_t seq_hist_oldest(const seq_hist *h);

#endif
