/* CPU feature detection and build information.
 *
 * Design: the shipped build is compiled for the baseline ISA (no
 * -march=native); only the files under kernels/avx2/ get -mavx2 -mfma. This
 * file decides at run time whether those kernels may be called. GCC and
 * clang's __builtin_cpu_supports("avx2") also checks that the OS saves the
 * ymm state (XGETBV), so a kernel never faults on an OS without AVX support.
 */
#include <stdlib.h>
#include <string.h>
#include "fastmlp.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FM_X86_DETECT 1
#endif

int fm_cpu_has_avx2(void) {
#ifdef FM_X86_DETECT
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

int fm_cpu_has_fma(void) {
#ifdef FM_X86_DETECT
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") ? 1 : 0;
#else
    return 0;
#endif
}

int fm_arch_compiled(int arch) {
    switch (arch) {
    case FM_ARCH_REF: return 1;
#ifdef FM_BUILD_AVX2
    case FM_ARCH_AVX2: return 1;
#endif
    default: return 0;
    }
}

int fm_arch_usable(int arch) {
    if (!fm_arch_compiled(arch)) return 0;
    if (arch == FM_ARCH_AVX2) return fm_cpu_has_avx2() && fm_cpu_has_fma();
    return 1;
}

const char *fm_arch_name(int arch) {
    switch (arch) {
    case FM_ARCH_REF: return "ref";
    case FM_ARCH_AVX2: return "avx2";
    default: return "unknown";
    }
}

/* The best usable architecture, unless FASTMLP_KERNEL names another one
 * ("ref" forces the portable kernels, e.g. to rule out a SIMD bug). */
static int fm_best_cached = -2;

static int fm_arch_best_compute(void) {
    int choice = fm_arch_usable(FM_ARCH_AVX2) ? FM_ARCH_AVX2 : FM_ARCH_REF;
    const char *env = getenv("FASTMLP_KERNEL");
    if (env && *env) {
        for (int a = 0; a < FM_ARCH_COUNT; a++)
            if (strcmp(env, fm_arch_name(a)) == 0 && fm_arch_usable(a)) choice = a;
    }
    return choice;
}

/* Decided once at load time (single-threaded), read-only afterwards. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((constructor))
#endif
static void fm_arch_best_init(void) {
    fm_best_cached = fm_arch_best_compute();
}

int fm_arch_best(void) {
    if (fm_best_cached == -2) fm_best_cached = fm_arch_best_compute();  /* no constructors */
    return fm_best_cached;
}

const char *fm_compiler(void) {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
    return "msvc";
#else
    return "unknown";
#endif
}

int fm_openmp_version(void) {
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}
