/*
 * dl_bench: the floor of loading a PAM module, in a C process linked with libpam as a PAM
 * application is (so libpam is loaded, and a Rust module's libgcc_s.so.1 is not, unless held).
 *
 * Usage: dl_bench ROUNDS PER_ROUND [--hold LIB]... MODULE...
 * For each round, for each MODULE: PER_ROUND times dlopen(MODULE, RTLD_NOW) (as libpam opens
 * modules) + dlclose. The libraries given with --hold are dlopen'ed first and kept loaded.
 * Prints one line per sample: "module_index ns", then one line per module:
 * "unmapped module_index 0|1" (whether dlclose really unmapped it, from /proc/self/maps).
 */
#include <dlfcn.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int mapped(const char *path) {
    FILE *m = fopen("/proc/self/maps", "r");
    if (!m) return -1;
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, m))
        if (strstr(line, path)) found = 1;
    fclose(m);
    return found;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: dl_bench ROUNDS PER_ROUND [--hold LIB]... MODULE...\n");
        return 2;
    }
    /* Keeps libpam linked (a PAM application's situation). */
    if (pam_strerror(NULL, PAM_SUCCESS) == NULL) return 2;
    int rounds = atoi(argv[1]), per = atoi(argv[2]);
    int i = 3;
    while (i + 1 < argc && strcmp(argv[i], "--hold") == 0) {
        if (!dlopen(argv[i + 1], RTLD_NOW | RTLD_GLOBAL)) {
            fprintf(stderr, "dlopen %s: %s\n", argv[i + 1], dlerror());
            return 1;
        }
        i += 2;
    }
    int first = i;
    for (int r = 0; r < rounds; r++) {
        for (int m = first; m < argc; m++) {
            for (int k = 0; k < per; k++) {
                long long t0 = now_ns();
                void *h = dlopen(argv[m], RTLD_NOW);
                if (!h) { fprintf(stderr, "dlopen %s: %s\n", argv[m], dlerror()); return 1; }
                dlclose(h);
                long long t1 = now_ns();
                printf("%d %lld\n", m - first, t1 - t0);
            }
        }
    }
    for (int m = first; m < argc; m++) printf("unmapped %d %d\n", m - first, !mapped(argv[m]));
    return 0;
}
