/* CPU feature detection and build information.
 *
 * Design: the shipped build is compiled for the baseline ISA (no
 * -march=native); only the files under kernels/avx2/ get -mavx2 -mfma and
 * those under kernels/avx512/ the AVX-512 flags. This file decides at run
 * time which of them may be called and which is the default (AVX-512 where
 * 512-bit FMAs are full width, then AVX2, then ref). GCC and
 * clang's __builtin_cpu_supports("avx2") also checks that the OS saves the
 * ymm state (XGETBV), so a kernel never faults on an OS without AVX support.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "fastmlp.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FM_X86_DETECT 1
#include <cpuid.h>
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

/* AVX-512 needs more than the CPUID bits: the OS must save the opmask and
 * the 32 full ZMM registers on a context switch (XCR0 bits 5-7, with the
 * SSE and AVX state, bits 1-2), or the first kernel would fault. Checked
 * here explicitly with CPUID leaf 1 (OSXSAVE), XGETBV and leaf 7. */
int fm_cpu_has_avx512(void) {
#ifdef FM_X86_DETECT
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (!(ecx & (1u << 27))) return 0;               /* OSXSAVE: XGETBV usable */
    unsigned int xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    if ((xlo & 0xE6u) != 0xE6u) return 0;            /* SSE, AVX, opmask, ZMM state */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const unsigned int need = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31); /* F DQ BW VL */
    return (ebx & need) == need && fm_cpu_has_avx2() && fm_cpu_has_fma();
#else
    return 0;
#endif
}

/* Whether 512-bit FMAs run at twice the 256-bit rate. AMD Zen 4 (family
 * 0x19 with AVX-512) executes each 512-bit operation as two 256-bit halves:
 * its AVX-512 peak equals its AVX2 peak (peak_flops.sh: 117.4 against 116.9
 * GFLOP/s float32 per core), and measured there, best of 20, 1 thread, the
 * AVX2 GEMM kernels are ahead (float32 1024^3 110 against 99 GFLOP/s,
 * float64 53 against 46; 128x784x256 even), so the AVX2 kernels stay the
 * default on it. Intel cores (Skylake-SP on) and Zen 5 (family 0x1A) have
 * full-width 512-bit units. The kernels give the same bits either way. */
int fm_cpu_avx512_full_width(void) {
#ifdef FM_X86_DETECT
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return 0;
    const int amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;
    if (!amd) return 1;
    __get_cpuid(1, &eax, &ebx, &ecx, &edx);
    unsigned int family = (eax >> 8) & 0xF;
    if (family == 0xF) family += (eax >> 20) & 0xFF;
    return family != 0x19;
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
#ifdef FM_BUILD_AVX512
    case FM_ARCH_AVX512: return 1;
#endif
    default: return 0;
    }
}

int fm_arch_usable(int arch) {
    if (!fm_arch_compiled(arch)) return 0;
    if (arch == FM_ARCH_AVX2) return fm_cpu_has_avx2() && fm_cpu_has_fma();
    if (arch == FM_ARCH_AVX512) return fm_cpu_has_avx512();
    return 1;
}

const char *fm_arch_name(int arch) {
    switch (arch) {
    case FM_ARCH_REF: return "ref";
    case FM_ARCH_AVX2: return "avx2";
    case FM_ARCH_AVX512: return "avx512";
    default: return "unknown";
    }
}

/* The best usable architecture, unless FASTMLP_KERNEL names another one
 * ("ref" forces the portable kernels, e.g. to rule out a SIMD bug). A name
 * that is unknown, not built or not supported by this CPU is never
 * silently replaced: fm_arch_env_error() says why, and the Python layer
 * raises it at import (the C entry points then run the best usable kernel,
 * so nothing faults). */
static int fm_best_cached = -2;
static char fm_env_error[160];

static int fm_arch_best_compute(void) {
    int choice = FM_ARCH_REF;
    if (fm_arch_usable(FM_ARCH_AVX2)) choice = FM_ARCH_AVX2;
    if (fm_arch_usable(FM_ARCH_AVX512) && fm_cpu_avx512_full_width()) choice = FM_ARCH_AVX512;
    fm_env_error[0] = 0;
    const char *env = getenv("FASTMLP_KERNEL");
    if (env && *env && strcmp(env, "auto") != 0) {
        int found = -1;
        for (int a = 0; a < FM_ARCH_COUNT; a++)
            if (strcmp(env, fm_arch_name(a)) == 0) found = a;
        if (found < 0)
            snprintf(fm_env_error, sizeof fm_env_error,
                     "FASTMLP_KERNEL=%.40s: unknown kernel (use auto, ref, avx2 or avx512)", env);
        else if (!fm_arch_compiled(found))
            snprintf(fm_env_error, sizeof fm_env_error,
                     "FASTMLP_KERNEL=%s: this build has no %s kernels", env, env);
        else if (!fm_arch_usable(found))
            snprintf(fm_env_error, sizeof fm_env_error,
                     "FASTMLP_KERNEL=%s: this CPU (or its OS) does not support %s", env, env);
        else
            choice = found;
    }
    return choice;
}

const char *fm_arch_env_error(void) {
    (void)fm_arch_best();
    return fm_env_error[0] ? fm_env_error : NULL;
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
