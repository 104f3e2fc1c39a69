/* A simulated NVML driver library for tests without a GPU.
 *
 * It exports the NVML symbols that the official Python bindings (nvidia-ml-py's pynvml) resolve
 * for the calls profiler/nvml.py makes, with the same struct layouts, and answers them from a
 * scenario file named by $NVML_SIM_SCENARIO (format: README.md beside this file). Time is
 * measured in milliseconds on CLOCK_MONOTONIC from the first nvmlInit. Like real hardware, the
 * energy counter and the power readings only change once per update period.
 *
 * Build: cc -shared -fPIC -O2 -o libnvidia-ml-sim.so nvml_sim.c
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_DEV 8
#define MAX_MIG 16
#define MAX_PROC 32
#define MAX_PTS 64
#define NOT_AVAILABLE_ULL 0xFFFFFFFFFFFFFFFFull

/* Return codes, as in nvml.h. */
enum { OK = 0, E_UNINIT = 1, E_INVALID = 2, E_NOT_SUPPORTED = 3, E_NO_PERMISSION = 4, E_NOT_FOUND = 6,
       E_INSUFFICIENT_SIZE = 7, E_DRIVER_NOT_LOADED = 9, E_LIBRARY_NOT_FOUND = 12, E_GPU_IS_LOST = 15,
       E_LIB_RM_VERSION_MISMATCH = 18, E_ARGUMENT_VERSION_MISMATCH = 25, E_UNKNOWN = 999 };
typedef int nvmlReturn_t;

/* Struct layouts, as pynvml declares them (checked against ctypes.sizeof by the tests). */
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; }
    nvmlProcessInfo_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef union { double dVal; unsigned int uiVal; unsigned long ulVal; unsigned long long ullVal; long long sllVal;
                int siVal; unsigned short usVal; } nvmlValue_t;
typedef struct { unsigned int fieldId, scopeId; long long timestamp, latencyUsec; unsigned int valueType;
                 unsigned int nvmlReturn; nvmlValue_t value; } nvmlFieldValue_t;
#define NVML_MEMORY_V2 ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))  /* 0x02000028 */
_Static_assert(sizeof(nvmlMemory_v2_t) == 40 && sizeof(nvmlFieldValue_t) == 40 && sizeof(nvmlProcessInfo_t) == 24,
               "struct layout differs from pynvml's");

enum { FI_ENERGY = 83, FI_POWER_AVERAGE = 185, FI_POWER_INSTANT = 186 };
enum { VT_UINT = 1, VT_ULL = 3 };
/* Capabilities a scenario can switch off (`unsupported NAME...`) or make fail (`error NAME=CODE`). */
static const char *const CAPS[] = {"energy_counter", "power_instant", "power_average", "power_usage", "memory_v2",
                                   "processes", "utilization", "power_limit", "temperature", "clocks", "mig", NULL};
enum { C_ENERGY, C_INSTANT, C_AVERAGE, C_USAGE, C_MEM_V2, C_PROCS, C_UTIL, C_LIMIT, C_TEMP, C_CLOCKS, C_MIG };

typedef struct { double t_ms, w; } point_t;
typedef struct { unsigned int pid; unsigned long long mem; } proc_t;
typedef struct {
    char uuid[96], name[96];
    unsigned int arch, power_limit_mw, temp_c, sm_mhz, mem_mhz, util_gpu, util_mem, mig_mode;
    int power_module_scope;                      /* power fields answer scope MODULE (1), not GPU (0) */
    double lose_after_ms, energy_start_mj;       /* lose_after_ms < 0: never */
    double energy_gain, energy_stuck_after_ms;   /* counter faults (counter_fault_key); 1 and -1: none */
    int square; double idle_w, busy_w, period_ms, duty; int npts; point_t pts[MAX_PTS];
    unsigned long long mem_total, mem_used, mem_reserved;
    int nproc; proc_t procs[MAX_PROC];
    int fail[16];                                /* per capability: the error its queries return, 0 = none */
} dev_t_;
typedef struct { char uuid[96]; unsigned int gi, ci; int parent; } mig_t;

static struct {
    int refcount, ndev, nmig, init_error;
    double slow_call_ms, update_ms;
    char driver[80], nvml_version[80];
    struct timespec t0;
    dev_t_ devs[MAX_DEV];
    mig_t migs[MAX_MIG];
} g;

static const struct { int code; const char *name, *text; } ERRORS[] = {
    {OK, "SUCCESS", "Success"}, {E_UNINIT, "UNINITIALIZED", "Uninitialized"},
    {E_INVALID, "INVALID_ARGUMENT", "Invalid Argument"}, {E_NOT_SUPPORTED, "NOT_SUPPORTED", "Not Supported"},
    {E_NO_PERMISSION, "NO_PERMISSION", "Insufficient Permissions"}, {E_NOT_FOUND, "NOT_FOUND", "Not Found"},
    {E_INSUFFICIENT_SIZE, "INSUFFICIENT_SIZE", "Insufficient Size"},
    {E_DRIVER_NOT_LOADED, "DRIVER_NOT_LOADED", "Driver Not Loaded"},
    {E_LIBRARY_NOT_FOUND, "LIBRARY_NOT_FOUND", "NVML Shared Library Not Found"},
    {E_GPU_IS_LOST, "GPU_IS_LOST", "GPU is lost"},
    {E_LIB_RM_VERSION_MISMATCH, "LIB_RM_VERSION_MISMATCH", "RM has detected an NVML/RM version mismatch."},
    {E_ARGUMENT_VERSION_MISMATCH, "ARGUMENT_VERSION_MISMATCH", "Argument version mismatch"},
    {E_UNKNOWN, "UNKNOWN", "Unknown Error"},
};
static const char *const ARCHS[] = {"", "", "kepler", "maxwell", "pascal", "volta", "turing", "ampere", "ada",
                                    "hopper", "blackwell", NULL};

/* ---- time and the power model ------------------------------------------------------------- */

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - g.t0.tv_sec) * 1e3 + (double)(t.tv_nsec - g.t0.tv_nsec) / 1e6;
}

static void sleep_ms(double ms) {
    struct timespec t = {(time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6)};
    while (nanosleep(&t, &t) != 0) {}
}

/* True power in watts at time t (ms since init). */
static double power_at(const dev_t_ *d, double t) {
    if (d->square) return fmod(t, d->period_ms) < d->duty * d->period_ms ? d->busy_w : d->idle_w;
    if (t <= d->pts[0].t_ms) return d->pts[0].w;
    for (int i = 1; i < d->npts; i++)
        if (t <= d->pts[i].t_ms) {
            const point_t *a = &d->pts[i - 1], *b = &d->pts[i];
            return a->w + (b->w - a->w) * (t - a->t_ms) / (b->t_ms - a->t_ms);
        }
    return d->pts[d->npts - 1].w;
}

/* Exact integral of the power from 0 to t, in W*ms = mJ. */
static double integral_mj(const dev_t_ *d, double t) {
    if (t <= 0) return 0;
    if (d->square) {
        double busy_ms = d->duty * d->period_ms, whole = floor(t / d->period_ms), rest = t - whole * d->period_ms;
        return whole * (d->busy_w * busy_ms + d->idle_w * (d->period_ms - busy_ms)) +
               d->busy_w * fmin(rest, busy_ms) + d->idle_w * fmax(0, rest - busy_ms);
    }
    double acc = 0, a = 0; /* the curve is linear between points and flat outside: trapezoids are exact */
    for (int i = 0; i <= d->npts && a < t; i++) {
        double b = i < d->npts ? fmin(d->pts[i].t_ms, t) : t;
        if (b <= a) continue;
        acc += (power_at(d, a) + power_at(d, b)) * 0.5 * (b - a);
        a = b;
    }
    return acc;
}

/* The last instant at which the hardware published new values (counters change once per period). */
static double last_update(void) { return floor(now_ms() / g.update_ms) * g.update_ms; }

/* Mean power in mW over [max(0, tb - window), tb], or the power at 0 when that is empty. */
static unsigned int mean_mw(const dev_t_ *d, double tb, double window) {
    double a = fmax(0, tb - window);
    double w = tb > a ? (integral_mj(d, tb) - integral_mj(d, a)) / (tb - a) : power_at(d, 0);
    return (unsigned int)llround(w * 1e3);
}
/* Instant power samples 1/4 of each update period (25 ms of 100 ms on A100/H100); average is 1 s. */
static unsigned int instant_mw(const dev_t_ *d) { return mean_mw(d, last_update(), g.update_ms / 4); }
static unsigned int average_mw(const dev_t_ *d) { return mean_mw(d, last_update(), 1000); }
/* ---- energy counter faults (device keys energy_gain, energy_stuck_after_ms) ---------------------- */

/* What the counter has added since init, in mJ: the exact integral as of the last update, times
 * `energy_gain` (a miscalibrated counter; below 0, one that runs down), frozen from
 * `energy_stuck_after_ms` on (a stuck one). */
static double counter_added_mj(const dev_t_ *d) {
    double t = last_update();
    if (d->energy_stuck_after_ms >= 0) t = fmin(t, d->energy_stuck_after_ms);
    return d->energy_gain * integral_mj(d, t);
}
/* One counter-fault key of a `device` line: 1 when `k` was one (and is set), else 0. */
static int counter_fault_key(dev_t_ *d, const char *k, const char *v) {
    if (strcmp(k, "energy_gain") == 0) d->energy_gain = atof(v);
    else if (strcmp(k, "energy_stuck_after_ms") == 0) d->energy_stuck_after_ms = atof(v);
    else return 0;
    return 1;
}
static void counter_fault_defaults(dev_t_ *d) { d->energy_gain = 1; d->energy_stuck_after_ms = -1; }

static unsigned long long energy_mj(const dev_t_ *d) {
    return (unsigned long long)(d->energy_start_mj + counter_added_mj(d));
}

/* ---- scenario parsing ------------------------------------------------------------------------ */

static int fail(int line, const char *what, const char *tok) {
    fprintf(stderr, "nvml_sim: %s line %d: %s '%s'\n", getenv("NVML_SIM_SCENARIO"), line, what, tok);
    return E_UNKNOWN;
}

static int error_code(const char *s) {
    for (size_t i = 0; i < sizeof ERRORS / sizeof *ERRORS; i++)
        if (strcmp(s, ERRORS[i].name) == 0) return ERRORS[i].code;
    return isdigit((unsigned char)*s) ? atoi(s) : -1;
}

/* A byte count with an optional KiB/MiB/GiB/KB/MB/GB suffix, or "na" for NVML's not-available value. */
static unsigned long long bytes(const char *s) {
    if (strcmp(s, "na") == 0) return NOT_AVAILABLE_ULL;
    char *end;
    double v = strtod(s, &end);
    double k = *end && end[1] == 'i' ? 1024 : 1000;
    double m = *end == 'K' ? k : *end == 'M' ? k * k : *end == 'G' ? k * k * k : 1;
    return (unsigned long long)(v * m);
}

/* Split a line into words at blanks; "double quotes" group; # starts a comment. Returns the count. */
static int split(char *s, char **words, int max) {
    int n = 0;
    while (n < max) {
        while (isspace((unsigned char)*s)) s++;
        if (!*s || *s == '#') break;
        words[n++] = s;
        char *out = s;
        int quoted = 0;
        for (; *s && (quoted || !isspace((unsigned char)*s)); s++)
            if (*s == '"') quoted = !quoted; else *out++ = *s;
        if (*s) s++;
        *out = '\0';
    }
    return n;
}

static void new_device(dev_t_ *d, int index) {
    memset(d, 0, sizeof *d);
    snprintf(d->uuid, sizeof d->uuid, "GPU-00000000-0000-4000-8000-%012d", index);
    snprintf(d->name, sizeof d->name, "NVIDIA Simulated GPU");
    d->arch = 9; d->power_limit_mw = 700000; d->temp_c = 40; d->sm_mhz = 1980; d->mem_mhz = 2619;
    d->lose_after_ms = -1; d->energy_start_mj = 123456789;
    d->npts = 1; d->pts[0].w = 60;
    d->mem_total = 80ull << 30; d->mem_used = 1ull << 30; d->mem_reserved = 512ull << 20;
    counter_fault_defaults(d);
}

static int parse_line(char *text, int line) {
    char *w[40];
    int n = split(text, w, 40);
    if (n == 0) return OK;
    const char *kw = w[0];
    dev_t_ *d = g.ndev ? &g.devs[g.ndev - 1] : NULL;
    /* Global settings: `NAME VALUE`. */
    if (n == 2 && strcmp(kw, "init_error") == 0) {
        return (g.init_error = error_code(w[1])) < 0 ? fail(line, "unknown error name", w[1]) : OK;
    }
    if (n == 2 && strcmp(kw, "slow_call_ms") == 0) { g.slow_call_ms = atof(w[1]); return OK; }
    if (n == 2 && strcmp(kw, "update_period_ms") == 0) { g.update_ms = fmax(1, atof(w[1])); return OK; }
    if (n == 2 && strcmp(kw, "driver_version") == 0) { snprintf(g.driver, 80, "%s", w[1]); return OK; }
    if (n == 2 && strcmp(kw, "nvml_version") == 0) { snprintf(g.nvml_version, 80, "%s", w[1]); return OK; }
    /* Everything else describes a device: a `device` line, or a line about the last one. */
    if (strcmp(kw, "device") == 0) {
        if (g.ndev == MAX_DEV) return fail(line, "too many devices", kw);
        d = &g.devs[g.ndev];
        new_device(d, g.ndev++);
    } else if (!d) {
        return fail(line, "expected a device line before", kw);
    } else if (strcmp(kw, "unsupported") == 0 || strcmp(kw, "error") == 0) {
        int is_error = kw[0] == 'e';
        for (int i = 1; i < n; i++) {  /* unsupported NAME...  |  error NAME=ERROR... */
            char *code = strchr(w[i], '=');
            if (code) *code++ = '\0';
            int c = 0, rc = code ? error_code(code) : E_NOT_SUPPORTED;
            while (CAPS[c] && strcmp(CAPS[c], w[i]) != 0) c++;
            if (!CAPS[c]) return fail(line, "unknown capability", w[i]);
            if (rc <= 0 || is_error != (code != NULL)) return fail(line, "bad capability or error name", w[i]);
            d->fail[c] = rc;
        }
        return OK;
    } else if (strcmp(kw, "power") == 0) {
        d->npts = 0; d->square = 0;
    } else if (strcmp(kw, "process") == 0) {
        if (d->nproc == MAX_PROC) return fail(line, "too many processes", kw);
        d->nproc++;
    } else if (strcmp(kw, "mig") == 0) {
        if (g.nmig == MAX_MIG) return fail(line, "too many MIG instances", kw);
        mig_t *m = &g.migs[g.nmig++];
        m->parent = g.ndev - 1;
        snprintf(m->uuid, sizeof m->uuid, "MIG-00000000-0000-4000-8000-%012d", g.nmig);
        d->mig_mode = 1;
    } else if (strcmp(kw, "memory") != 0 && strcmp(kw, "util") != 0) return fail(line, "unknown keyword", kw);

    for (int i = 1; i < n; i++) {
        char *k = w[i], *v = strchr(w[i], '=');
        if (!v) return fail(line, "expected key=value, got", k);
        *v++ = '\0';
        if (strcmp(kw, "device") == 0) {
            if (strcmp(k, "uuid") == 0) snprintf(d->uuid, 96, "%s", v);
            else if (strcmp(k, "name") == 0) snprintf(d->name, 96, "%s", v);
            else if (strcmp(k, "arch") == 0) {
                int a = 0;
                while (ARCHS[a] && strcmp(ARCHS[a], v) != 0) a++;
                d->arch = ARCHS[a] ? (unsigned)a : (unsigned)atoi(v);
            } else if (strcmp(k, "power_limit_w") == 0) d->power_limit_mw = (unsigned)(atof(v) * 1e3);
            else if (strcmp(k, "power_scope") == 0) d->power_module_scope = strcmp(v, "module") == 0;
            else if (strcmp(k, "mig") == 0) d->mig_mode = (unsigned)atoi(v);
            else if (strcmp(k, "lose_after_ms") == 0) d->lose_after_ms = atof(v);
            else if (strcmp(k, "energy_start_mj") == 0) d->energy_start_mj = atof(v);
            else if (strcmp(k, "temp_c") == 0) d->temp_c = (unsigned)atoi(v);
            else if (strcmp(k, "sm_clock_mhz") == 0) d->sm_mhz = (unsigned)atoi(v);
            else if (strcmp(k, "mem_clock_mhz") == 0) d->mem_mhz = (unsigned)atoi(v);
            else if (counter_fault_key(d, k, v)) continue;
            else return fail(line, "unknown device key", k);
        } else if (strcmp(kw, "power") == 0) {
            if (strcmp(k, "watts") == 0) { d->pts[0].t_ms = 0; d->pts[0].w = atof(v); d->npts = 1; }
            else if (strcmp(k, "idle_w") == 0) { d->square = 1; d->idle_w = atof(v); }
            else if (strcmp(k, "busy_w") == 0) { d->square = 1; d->busy_w = atof(v); }
            else if (strcmp(k, "period_ms") == 0) d->period_ms = atof(v);
            else if (strcmp(k, "duty") == 0) d->duty = atof(v);
            else if (strcmp(k, "points") == 0) {  /* points=T_MS:WATTS,T_MS:WATTS,... in increasing time */
                for (char *p = strtok(v, ","); p && d->npts < MAX_PTS; p = strtok(NULL, ","))
                    if (sscanf(p, "%lf:%lf", &d->pts[d->npts].t_ms, &d->pts[d->npts].w) == 2) d->npts++;
                    else return fail(line, "expected T_MS:WATTS, got", p);
            } else return fail(line, "unknown power key", k);
        } else if (strcmp(kw, "memory") == 0) {
            if (strcmp(k, "total") == 0) d->mem_total = bytes(v);
            else if (strcmp(k, "used") == 0) d->mem_used = bytes(v);
            else if (strcmp(k, "reserved") == 0) d->mem_reserved = bytes(v);
            else return fail(line, "unknown memory key", k);
        } else if (strcmp(kw, "util") == 0) {
            if (strcmp(k, "gpu") == 0) d->util_gpu = (unsigned)atoi(v);
            else if (strcmp(k, "memory") == 0) d->util_mem = (unsigned)atoi(v);
            else return fail(line, "unknown util key", k);
        } else if (strcmp(kw, "process") == 0) {
            if (strcmp(k, "pid") == 0) d->procs[d->nproc - 1].pid = (unsigned)atoi(v);
            else if (strcmp(k, "mem") == 0) d->procs[d->nproc - 1].mem = bytes(v);
            else return fail(line, "unknown process key", k);
        } else { /* mig */
            mig_t *m = &g.migs[g.nmig - 1];
            if (strcmp(k, "uuid") == 0) snprintf(m->uuid, 96, "%s", v);
            else if (strcmp(k, "gi") == 0) m->gi = (unsigned)atoi(v);
            else if (strcmp(k, "ci") == 0) m->ci = (unsigned)atoi(v);
            else return fail(line, "unknown mig key", k);
        }
    }
    if (strcmp(kw, "power") == 0 && d->square) {  /* a square wave: busy for duty*period, then idle */
        if (d->period_ms <= 0) d->period_ms = 100;
        if (d->duty <= 0 || d->duty > 1) d->duty = 0.5;
    } else if (strcmp(kw, "power") == 0 && d->npts == 0) {
        return fail(line, "power needs watts=, points= or idle_w= busy_w=", kw);
    }
    return OK;
}

static int load_scenario(void) {
    memset(&g, 0, sizeof g);
    g.update_ms = 100;
    snprintf(g.driver, 80, "550.54.15");
    snprintf(g.nvml_version, 80, "12.550.54.15");
    const char *path = getenv("NVML_SIM_SCENARIO");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) {
        fprintf(stderr, "nvml_sim: set NVML_SIM_SCENARIO to a readable scenario file (got %s)\n",
                path ? path : "nothing");
        return E_DRIVER_NOT_LOADED;
    }
    char buf[2048];
    int rc = OK;
    for (int line = 1; rc == OK && fgets(buf, sizeof buf, f); line++) rc = parse_line(buf, line);
    fclose(f);
    return rc != OK ? rc : g.init_error;
}

/* ---- handles ---------------------------------------------------------------------------------- */

static dev_t_ *as_dev(void *h) {
    for (int i = 0; i < g.ndev; i++) if (h == &g.devs[i]) return &g.devs[i];
    return NULL;
}
static mig_t *as_mig(void *h) {
    for (int i = 0; i < g.nmig; i++) if (h == &g.migs[i]) return &g.migs[i];
    return NULL;
}

/* Every device call starts here: initialised? a known handle? slow? lost? the capability there? */
static nvmlReturn_t enter(void *h, dev_t_ **out, int cap) {
    if (!g.refcount) return E_UNINIT;
    dev_t_ *d = as_dev(h);
    if (!d) return E_INVALID;
    if (g.slow_call_ms > 0) sleep_ms(g.slow_call_ms);
    if (d->lose_after_ms >= 0 && now_ms() >= d->lose_after_ms) return E_GPU_IS_LOST;
    if (cap >= 0 && d->fail[cap]) return d->fail[cap];
    *out = d;
    return OK;
}
#define ENTER(h, cap) dev_t_ *d; { nvmlReturn_t rc_ = enter((h), &d, (cap)); if (rc_ != OK) return rc_; }

static nvmlReturn_t copy_str(char *dst, unsigned int len, const char *src) {
    if (!dst || strlen(src) >= len) return E_INSUFFICIENT_SIZE;
    memcpy(dst, src, strlen(src) + 1);
    return OK;
}

/* ---- the exported API ------------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    if (g.refcount) { g.refcount++; return OK; }  /* like NVML: only the first init loads */
    nvmlReturn_t rc = load_scenario();
    if (rc != OK) return rc;
    clock_gettime(CLOCK_MONOTONIC, &g.t0);
    g.refcount = 1;
    return OK;
}
EXPORT nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
EXPORT nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }
EXPORT nvmlReturn_t nvmlShutdown(void) {
    if (!g.refcount) return E_UNINIT;
    g.refcount--;
    return OK;
}
EXPORT const char *nvmlErrorString(nvmlReturn_t rc) {
    for (size_t i = 0; i < sizeof ERRORS / sizeof *ERRORS; i++) if (ERRORS[i].code == rc) return ERRORS[i].text;
    return "Unknown Error";
}
/* For the tests: the simulation's time zero (set by the first nvmlInit, after its scenario loads) in
 * nanoseconds on CLOCK_MONOTONIC, so a test can map simulated milliseconds onto its own clock exactly. */
EXPORT unsigned long long nvmlSimClockOriginNs(void) {
    return (unsigned long long)g.t0.tv_sec * 1000000000ULL + (unsigned long long)g.t0.tv_nsec;
}
/* For the tests: the size of a struct as this library lays it out, to compare with ctypes. */
EXPORT int nvmlSimStructSize(const char *name) {
    return strcmp(name, "memory_v2") == 0 ? (int)sizeof(nvmlMemory_v2_t)
         : strcmp(name, "memory") == 0 ? (int)sizeof(nvmlMemory_t)
         : strcmp(name, "field_value") == 0 ? (int)sizeof(nvmlFieldValue_t)
         : strcmp(name, "process_info") == 0 ? (int)sizeof(nvmlProcessInfo_t)
         : strcmp(name, "utilization") == 0 ? (int)sizeof(nvmlUtilization_t) : -1;
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int len) {
    return g.refcount ? copy_str(v, len, g.driver) : E_UNINIT;
}
EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *v, unsigned int len) {
    return g.refcount ? copy_str(v, len, g.nvml_version) : E_UNINIT;
}
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!g.refcount) return E_UNINIT;
    *count = (unsigned int)g.ndev;
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h) {
    if (!g.refcount) return E_UNINIT;
    if (i >= (unsigned int)g.ndev) return E_INVALID;
    *h = &g.devs[i];
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, void **h) {
    if (!g.refcount) return E_UNINIT;
    for (int i = 0; i < g.ndev; i++) if (strcmp(uuid, g.devs[i].uuid) == 0) { *h = &g.devs[i]; return OK; }
    for (int i = 0; i < g.nmig; i++) if (strcmp(uuid, g.migs[i].uuid) == 0) { *h = &g.migs[i]; return OK; }
    return E_NOT_FOUND;
}
EXPORT nvmlReturn_t nvmlDeviceGetIndex(void *h, unsigned int *index) {
    ENTER(h, -1);
    *index = (unsigned int)(d - g.devs);
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetName(void *h, char *name, unsigned int len) {
    mig_t *m = g.refcount ? as_mig(h) : NULL;
    if (m) return copy_str(name, len, g.devs[m->parent].name);
    ENTER(h, -1);
    return copy_str(name, len, d->name);
}
EXPORT nvmlReturn_t nvmlDeviceGetUUID(void *h, char *uuid, unsigned int len) {
    mig_t *m = g.refcount ? as_mig(h) : NULL;
    if (m) return copy_str(uuid, len, m->uuid);
    ENTER(h, -1);
    return copy_str(uuid, len, d->uuid);
}
EXPORT nvmlReturn_t nvmlDeviceIsMigDeviceHandle(void *h, unsigned int *is_mig) {
    if (!g.refcount) return E_UNINIT;
    *is_mig = as_mig(h) != NULL;
    return *is_mig || as_dev(h) ? OK : E_INVALID;
}
EXPORT nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(void *h, void **parent) {
    mig_t *m = g.refcount ? as_mig(h) : NULL;
    if (!m) return g.refcount ? E_INVALID : E_UNINIT;
    *parent = &g.devs[m->parent];
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceId(void *h, unsigned int *id) {
    mig_t *m = g.refcount ? as_mig(h) : NULL;
    if (!m) return g.refcount ? E_NOT_SUPPORTED : E_UNINIT;  /* NVML: not a MIG handle */
    *id = m->gi;
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeInstanceId(void *h, unsigned int *id) {
    mig_t *m = g.refcount ? as_mig(h) : NULL;
    if (!m) return g.refcount ? E_NOT_SUPPORTED : E_UNINIT;
    *id = m->ci;
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetArchitecture(void *h, unsigned int *arch) {
    ENTER(h, -1);
    *arch = d->arch;
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetMigMode(void *h, unsigned int *current, unsigned int *pending) {
    ENTER(h, C_MIG);
    *current = *pending = d->mig_mode;
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned int *mw) {
    ENTER(h, C_LIMIT);
    *mw = d->power_limit_mw;
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(void *h, unsigned int *mw) {
    return nvmlDeviceGetEnforcedPowerLimit(h, mw);
}
EXPORT nvmlReturn_t nvmlDeviceGetTemperature(void *h, unsigned int sensor, unsigned int *c) {
    ENTER(h, C_TEMP);
    if (sensor != 0) return E_INVALID;
    *c = d->temp_c;
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(void *h, unsigned int type, unsigned int *mhz) {
    ENTER(h, C_CLOCKS);
    *mhz = type == 1 || type == 0 ? d->sm_mhz : type == 2 ? d->mem_mhz : 0;  /* graphics/SM, memory */
    return type <= 3 ? OK : E_INVALID;
}
/* The board's power: instant before Ampere, the 1 s average from Ampere on (docs/gpus.md#the-1-s-average). */
EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(void *h, unsigned int *mw) {
    ENTER(h, C_USAGE);
    *mw = d->arch >= 7 ? average_mw(d) : instant_mw(d);
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *mj) {
    ENTER(h, C_ENERGY);
    if (d->arch < 5) return E_NOT_SUPPORTED;  /* the counter exists from Volta on */
    *mj = energy_mj(d);
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(void *h, int count, nvmlFieldValue_t *values) {
    ENTER(h, -1);
    if (count <= 0 || !values) return E_INVALID;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        int power = v->fieldId == FI_POWER_INSTANT || v->fieldId == FI_POWER_AVERAGE;
        int cap = v->fieldId == FI_ENERGY ? C_ENERGY : v->fieldId == FI_POWER_INSTANT ? C_INSTANT : C_AVERAGE;
        v->timestamp = (long long)wall.tv_sec * 1000000 + wall.tv_nsec / 1000;
        v->latencyUsec = 0;
        v->nvmlReturn = E_NOT_SUPPORTED;
        if (!power && v->fieldId != FI_ENERGY) continue;
        if (d->fail[cap]) { v->nvmlReturn = (unsigned)d->fail[cap]; continue; }
        if (power && v->scopeId != (unsigned)d->power_module_scope) continue;
        if (v->fieldId == FI_ENERGY) {
            if (d->arch < 5) continue;
            v->valueType = VT_ULL;
            v->value.ullVal = energy_mj(d);
        } else {
            v->valueType = VT_UINT;
            v->value.uiVal = v->fieldId == FI_POWER_INSTANT ? instant_mw(d) : average_mw(d);
        }
        v->nvmlReturn = OK;
    }
    return OK;
}
/* v1 `used` includes the reserved memory; v2 reports it apart (rust-nvml #57). */
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    ENTER(h, -1);
    m->total = d->mem_total;
    m->used = d->mem_used + d->mem_reserved;
    m->free = d->mem_total - m->used;
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(void *h, nvmlMemory_v2_t *m) {
    ENTER(h, C_MEM_V2);
    if (m->version != NVML_MEMORY_V2) return E_ARGUMENT_VERSION_MISMATCH;
    m->total = d->mem_total;
    m->reserved = d->mem_reserved;
    m->used = d->mem_used;
    m->free = d->mem_total - d->mem_used - d->mem_reserved;
    return OK;
}
EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(void *h, nvmlUtilization_t *u) {
    ENTER(h, C_UTIL);
    if (d->mig_mode) return E_NOT_SUPPORTED;  /* MIG disables device utilisation */
    u->gpu = d->util_gpu;
    u->memory = d->util_mem;
    return OK;
}
/* Two-call protocol: too small an array (or NULL) gives INSUFFICIENT_SIZE and the needed count. */
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned int *count,
                                                             nvmlProcessInfo_t *infos) {
    ENTER(h, C_PROCS);
    unsigned int have = *count;
    *count = (unsigned int)d->nproc;
    if (d->nproc == 0) return OK;
    if (!infos || have < (unsigned int)d->nproc) return E_INSUFFICIENT_SIZE;
    for (int i = 0; i < d->nproc; i++) {
        infos[i].pid = d->procs[i].pid;
        infos[i].usedGpuMemory = d->procs[i].mem;
        infos[i].gpuInstanceId = infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    return OK;
}
