/* The executor: decides, for one decoded event, what each sequence keeps (type declared,
 * every filter holds) and computes its type index, columns and bucket. The stream
 * consumer and the batch builder both call it, so the two paths cannot disagree on
 * what an event contributes. Pure and allocation-free. */
#include "exec.h"

int64_t seq_exec_bucket(const seq_def *def, int64_t time_ms)
{
    int64_t q = time_ms / def->bucket_ms;
    if (time_ms % def->bucket_ms != 0 && time_ms < 0) q--; /* C truncates toward zero */
    return q;
}

static int op_holds(seq_op op, double a, double b)
{
    switch (op) {
    case SEQ_OP_LT: return a < b;
    case SEQ_OP_LE: return a <= b;
    case SEQ_OP_EQ: return a == b;
    case SEQ_OP_NE: return a != b;
    case SEQ_OP_GE: return a >= b;
    case SEQ_OP_GT: return a > b;
    }
    return 0;
}

/* Every filter that applies to type index ti holds; a missing attribute fails it. */
static int filters_hold(const seq_sequence *s, const seq_event *ev, uint32_t ti)
{
    for (uint32_t i = 0; i < s->n_filters; i++) {
        const seq_filter *f = &s->filters[i];
        if (!(f->type_mask >> ti & 1)) continue;
        if (!(ev->attr_present >> f->attr & 1)) return 0;
        if (!op_holds(f->op, ev->attr[f->attr], f->value)) return 0;
    }
    return 1;
}

static void fill_out(const seq_def *def, const seq_sequence *s, const seq_event *ev, uint32_t ti,
                     seq_exec_out *o)
{
    o->seq_id = s->id;
    o->type_idx = ti;
    o->bucket = seq_exec_bucket(def, ev->time_ms);
    o->n_cols = s->n_columns;
    for (uint32_t c = 0; c < s->n_columns; c++) {
        const seq_column *col = &s->columns[c];
        o->cols[c] = (ev->attr_present >> col->attr & 1) ? ev->attr[col->attr] : col->dflt;
    }
}

seq_exec_result seq_exec_apply(const seq_def *def, const seq_event *ev, int only_seq,
                               seq_exec_out *out, uint32_t *n_out)
{
    uint32_t first = 0, last = def->n_seqs;
    int declared = 0;
    *n_out = 0;
    if (only_seq >= 0) {
        if ((uint32_t)only_seq >= def->n_seqs) return SEQ_EXEC_UNKNOWN_TYPE;
        first = (uint32_t)only_seq;
        last = first + 1;
    }
    for (uint32_t i = first; i < last; i++) {
        const seq_sequence *s = &def->seqs[i];
        int ti = seq_def_type_index(s, ev->type, ev->type_len);
        if (ti < 0) continue;
        declared = 1;
        if (!filters_hold(s, ev, (uint32_t)ti)) continue;
        fill_out(def, s, ev, (uint32_t)ti, &out[(*n_out)++]);
    }
    if (*n_out) return SEQ_EXEC_KEPT;
    return declared ? SEQ_EXEC_FILTERED : SEQ_EXEC_UNKNOWN_TYPE;
}
