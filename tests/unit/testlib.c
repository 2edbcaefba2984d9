#include "testlib.h"
int seq_t_pass, seq_t_fail;
int seq_t_done(void)
{
    printf("%d passed, %d failed\n", seq_t_pass, seq_t_fail);
    return seq_t_fail ? 1 : 0;
}
