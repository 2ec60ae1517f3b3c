/* Whole-network drivers of a dense MLP: float32 and float64 instances of
 * mlp_tmpl.h.
 *
 * Design: a network pass is a chain of small kernels (a GEMM per layer, an
 * output softmax), each too short for a parallel region of its own -- at
 * prediction of one row a layer takes a few microseconds, about what starting
 * or waking an OpenMP team costs. So the whole chain runs in ONE parallel
 * region: every product is prepared once for the team (gemm.h,
 * fm_?gemm_team_prepare), the team shares one packing workspace, and the
 * threads meet at a barrier between layers. Each kernel splits its work
 * exactly as it does when called alone, so results are bitwise those of the
 * kernel-by-kernel path and independent of the thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "mlp.h"
#include "act.h"
#include "norm.h"
#include "optim.h"
#include "../gemm/gemm.h"

#define FT float
#define FM_X(n) fm_s_##n
#define FM_NET fm_s_mlp_net
#define FM_CALL fm_s_gemm_call
#define FM_SOFTMAX_ROWS fm_softmax_rows_s
#define FM_TRAIN fm_s_mlp_train
#define FM_BATCH fm_s_mlp_batch
#define FM_XENT fm_xent_labels_s
#define FM_COLSUM fm_norm_colsum_s
#define FM_SUMSQ fm_optim_sumsq_f32
#define FM_OPTIM_STEP fm_optim_step_f32
#define FM_ACT_BACKWARD fm_act_backward_s
#include "mlp_tmpl.h"
#undef FT
#undef FM_X
#undef FM_NET
#undef FM_CALL
#undef FM_SOFTMAX_ROWS
#undef FM_TRAIN
#undef FM_BATCH
#undef FM_XENT
#undef FM_COLSUM
#undef FM_SUMSQ
#undef FM_OPTIM_STEP
#undef FM_ACT_BACKWARD

#define FT double
#define FM_X(n) fm_d_##n
#define FM_NET fm_d_mlp_net
#define FM_CALL fm_d_gemm_call
#define FM_SOFTMAX_ROWS fm_softmax_rows_d
#define FM_TRAIN fm_d_mlp_train
#define FM_BATCH fm_d_mlp_batch
#define FM_XENT fm_xent_labels_d
#define FM_COLSUM fm_norm_colsum_d
#define FM_SUMSQ fm_optim_sumsq_f64
#define FM_OPTIM_STEP fm_optim_step_f64
#define FM_ACT_BACKWARD fm_act_backward_d
#include "mlp_tmpl.h"
