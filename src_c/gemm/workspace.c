/* Per-thread packing workspace.
 *
 * Design: the packed A and B buffers (up to a few MB) are reused across calls
 * instead of being malloc'ed each time: large mallocs go to mmap in glibc,
 * and faulting fresh pages in on every call costs more than a small GEMM
 * itself. Each calling (Python) thread owns its own cache through a pthread
 * key, so concurrent calls from several threads never share a buffer, and
 * the key's destructor frees it when the thread exits.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200112L /* posix_memalign under -std=c11 */
#endif
#include <stdlib.h>
#include <stdint.h>
#include "gemm.h"

#define FM_ALIGN 64

#if defined(_WIN32)
#include <malloc.h>
void *fm_workspace_get(size_t bytes, int *owned) {
    *owned = 1;
    return _aligned_malloc(bytes ? bytes : FM_ALIGN, FM_ALIGN);
}
void fm_workspace_release(void *p, int owned) {
    if (owned) _aligned_free(p);
}
#else
#include <pthread.h>

typedef struct {
    void *ptr;
    size_t cap;
} fm_ws;

static pthread_key_t fm_ws_key;
static pthread_once_t fm_ws_once = PTHREAD_ONCE_INIT;
static int fm_ws_key_ok = 0;

static void fm_ws_free(void *p) {
    fm_ws *ws = (fm_ws *)p;
    if (ws) {
        free(ws->ptr);
        free(ws);
    }
}

static void fm_ws_init(void) {
    fm_ws_key_ok = pthread_key_create(&fm_ws_key, fm_ws_free) == 0;
}

static void *fm_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, FM_ALIGN, bytes ? bytes : FM_ALIGN) != 0) return NULL;
    return p;
}

/* Returns a 64-byte aligned buffer of at least `bytes`, or NULL. *owned says
 * whether the caller must hand it back with fm_workspace_release (only when
 * the thread cache could not be used). */
void *fm_workspace_get(size_t bytes, int *owned) {
    *owned = 0;
    pthread_once(&fm_ws_once, fm_ws_init);
    if (!fm_ws_key_ok) {
        *owned = 1;
        return fm_aligned_alloc(bytes);
    }
    fm_ws *ws = (fm_ws *)pthread_getspecific(fm_ws_key);
    if (!ws) {
        ws = (fm_ws *)calloc(1, sizeof(fm_ws));
        if (!ws || pthread_setspecific(fm_ws_key, ws) != 0) {
            free(ws);
            *owned = 1;
            return fm_aligned_alloc(bytes);
        }
    }
    if (ws->cap < bytes) {
        void *p = fm_aligned_alloc(bytes);
        if (!p) return NULL;
        free(ws->ptr);
        ws->ptr = p;
        ws->cap = bytes;
    }
    return ws->ptr;
}

void fm_workspace_release(void *p, int owned) {
    if (owned) free(p);
}
#endif
