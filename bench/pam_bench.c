/*
 * pam_bench: times logins through the real libpam, in one process.
 *
 * Usage: pam_bench SERVICE[,SERVICE...] LOGINS_FILE [SECONDS]
 * LOGINS_FILE: one "user code" pair per line. For each line and each service, in an order that
 * rotates from one line to the next (so drift in the host's speed falls on every service
 * alike): pam_start(SERVICE, user), pam_authenticate (the conversation answers every prompt
 * with the code), pam_end.
 * Prints one line per login: "service full_ns auth_ns result minflt auth_minflt", where service
 * is the service's index in the list, full covers pam_start + pam_authenticate + pam_end, auth
 * covers pam_authenticate alone, minflt is the number of minor page faults of the process
 * during that login and auth_minflt those during pam_authenticate (getrusage: outside the
 * timed parts, but for auth_minflt's two calls inside the full login's, about a microsecond for
 * every module alike). The benchmark driver (twofold-bench) computes the statistics.
 * With SECONDS (a throughput run: several of these at once), no login starts once that long has
 * passed since it started; the file must hold enough lines to last that long.
 */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static const char *current_code;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)data;
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
            r[i].resp = strdup(current_code);
    }
    *resp = r;
    return PAM_SUCCESS;
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long minflt(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: pam_bench SERVICE[,SERVICE...] LOGINS_FILE [SECONDS]\n");
        return 2;
    }
    char *services[16];
    int n_services = 0;
    for (char *s = strtok(argv[1], ","); s && n_services < 16; s = strtok(NULL, ","))
        services[n_services++] = s;
    if (n_services == 0) { fprintf(stderr, "no service\n"); return 2; }
    FILE *f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 2; }
    char user[256], code[64];
    struct pam_conv c = { conv, NULL };
    long long deadline = 0;
    if (argc == 4) {
        double seconds = atof(argv[3]);
        if (seconds <= 0) { fprintf(stderr, "SECONDS must be positive\n"); return 2; }
        deadline = now_ns() + (long long)(seconds * 1e9);
    }
    for (int line = 0; fscanf(f, "%255s %63s", user, code) == 2; line++) {
        current_code = code;
        if (deadline && now_ns() >= deadline) break;
        for (int j = 0; j < n_services; j++) {
            int k = (line + j) % n_services;
            pam_handle_t *h = NULL;
            long flt0 = minflt();
            long long t0 = now_ns();
            int rc = pam_start(services[k], user, &c, &h);
            if (rc != PAM_SUCCESS) { fprintf(stderr, "pam_start: %d\n", rc); return 1; }
            long aflt0 = minflt();
            long long t1 = now_ns();
            rc = pam_authenticate(h, PAM_SILENT);
            long long t2 = now_ns();
            long aflt1 = minflt();
            pam_end(h, rc);
            long long t3 = now_ns();
            long flt1 = minflt();
            printf("%d %lld %lld %d %ld %ld\n", k, t3 - t0, t2 - t1, rc, flt1 - flt0, aflt1 - aflt0);
        }
    }
    fclose(f);
    return 0;
}
