/*
 * malloc-trace.c: record a program's malloc/free calls as a vmap allocation trace.
 *
 *   gcc -O2 -shared -fPIC -o malloc-trace.so malloc-trace.c -ldl
 *   TRACE_FILE=/tmp/t LD_PRELOAD=$PWD/malloc-trace.so some-program args...
 *
 * Each process writes TRACE_FILE.<pid>: "a SIZE PTR" per allocation (malloc, calloc,
 * posix_memalign, aligned_alloc; realloc as a free and an allocation), "f PTR" per free.
 * The pointer is a fine ID: a freed pointer is only reused after its "f" line. Single-threaded
 * programs only (the buffer has no lock). examples/traces/README.md says how the shipped
 * trace was made from it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdint.h>

static void *(*rmalloc)(size_t);
static void (*rfree)(void *);
static void *(*rcalloc)(size_t, size_t);
static void *(*rrealloc)(void *, size_t);
static int (*rpm)(void **, size_t, size_t);
static void *(*raligned)(size_t, size_t);
static __thread int busy;
static int fd = -1;
static char boot[65536];
static size_t bootUsed;
static char buf[1 << 16];
static size_t used;

static void flush(void) { if (fd >= 0 && used) { write(fd, buf, used); } used = 0; }
static void emit(const char *s, size_t n) { if (used + n > sizeof buf) flush(); memcpy(buf + used, s, n); used += n; }
static void init(void) {
  if (rmalloc) return;
  busy = 1;
  rmalloc = dlsym(RTLD_NEXT, "malloc"); rfree = dlsym(RTLD_NEXT, "free"); rcalloc = dlsym(RTLD_NEXT, "calloc");
  rrealloc = dlsym(RTLD_NEXT, "realloc"); rpm = dlsym(RTLD_NEXT, "posix_memalign"); raligned = dlsym(RTLD_NEXT, "aligned_alloc");
  const char *f = getenv("TRACE_FILE");
  if (f) { char name[512]; snprintf(name, sizeof name, "%s.%d", f, (int)getpid()); fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644); }
  busy = 0;
}
static void logA(size_t n, void *p) { if (busy || fd < 0 || !p) return; busy = 1; char s[64]; int k = snprintf(s, sizeof s, "a %zu %lx\n", n, (unsigned long)(uintptr_t)p); emit(s, k); busy = 0; }
static void logF(void *p) { if (busy || fd < 0 || !p) return; busy = 1; char s[64]; int k = snprintf(s, sizeof s, "f %lx\n", (unsigned long)(uintptr_t)p); emit(s, k); busy = 0; }
__attribute__((destructor)) static void fin(void) { flush(); }

void *malloc(size_t n) { init(); void *p = rmalloc(n); logA(n, p); return p; }
void free(void *p) { if ((char *)p >= boot && (char *)p < boot + sizeof boot) return; init(); logF(p); rfree(p); }
void *calloc(size_t a, size_t b) {
  if (!rcalloc) { if (busy) { void *p = boot + bootUsed; bootUsed += (a * b + 15) & ~15; return p; } init(); }
  void *p = rcalloc(a, b); logA(a * b, p); return p; }
void *realloc(void *o, size_t n) { init(); if (!o) { void *p = rrealloc(o, n); logA(n, p); return p; } void *p = rrealloc(o, n); if (n == 0) { logF(o); return p; } if (p) { logF(o); logA(n, p); } return p; }
int posix_memalign(void **r, size_t al, size_t n) { init(); int e = rpm(r, al, n); if (!e) logA(n, *r); return e; }
void *aligned_alloc(size_t al, size_t n) { init(); void *p = raligned(al, n); logA(n, p); return p; }
