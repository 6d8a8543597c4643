/*
 * A C feed handler embedding tickcast: starts a server and publishes a
 * simulated feed from two threads (one for equities, one for FX).
 *
 *   make -C ffi/examples          # or see the one-line cc command in README.md
 *   ./ffi/examples/feed_handler [seconds] [listen-address]
 *
 * Subscribe with: cargo run --example subscribe -- ws://127.0.0.1:8090/ws '*'
 */

/* nanosleep, rand_r and clock_gettime are POSIX, not ISO C: ask for them, so
 * `cc -std=c11` (the README's command) declares them. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tickcast.h"

struct feed {
    tickcast_server *server;
    const char *const *topics;
    double *mids;
    int count;
    double tick;
    volatile int *stop;
};

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *run_feed(void *arg) {
    struct feed *f = arg;
    unsigned seed = (unsigned)(size_t)f;
    while (!*f->stop) {
        int i = rand_r(&seed) % f->count;
        double step = ((double)(rand_r(&seed) % 21) - 10.0) * f->tick;
        f->mids[i] += step;
        tickcast_update u;
        memset(&u, 0, sizeof u);
        u.fields = TICKCAST_FIELD_BID | TICKCAST_FIELD_ASK;
        u.bid = f->mids[i] - f->tick;
        u.ask = f->mids[i] + f->tick;
        /* timestamp_ns 0: the library stamps it. */
        tickcast_result r = tickcast_publish(f->server, f->topics[i], &u);
        if (r != TICKCAST_RESULT_OK) {
            fprintf(stderr, "publish %s: %s\n", f->topics[i], tickcast_result_str(r));
            return NULL;
        }
        sleep_ms(5);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 3600;
    const char *listen = argc > 2 ? argv[2] : "127.0.0.1:8090";

    tickcast_config *cfg = tickcast_config_new();
    if (!cfg) {
        return 1;
    }
    tickcast_result r = tickcast_config_set_listen(cfg, listen);
    if (r != TICKCAST_RESULT_OK) {
        fprintf(stderr, "listen %s: %s\n", listen, tickcast_result_str(r));
        tickcast_config_free(cfg);
        return 1;
    }
    tickcast_server *server = NULL;
    r = tickcast_server_start(cfg, &server);
    tickcast_config_free(cfg);
    if (r != TICKCAST_RESULT_OK) {
        fprintf(stderr, "start: %s\n", tickcast_result_str(r));
        return 1;
    }
    uint16_t port = 0;
    tickcast_server_port(server, &port);
    printf("serving on ws://127.0.0.1:%u/ws for %d s\n", (unsigned)port, seconds);
    fflush(stdout);

    static const char *const equities[] = {"AAPL", "MSFT", "NVDA", "AMZN"};
    static const char *const fx[] = {"FX.EURUSD", "FX.USDJPY", "FX.GBPUSD"};
    double equity_mids[] = {189.5, 415.2, 875.0, 182.3};
    double fx_mids[] = {1.0845, 151.42, 1.2712};
    volatile int stop = 0;
    struct feed feeds[2] = {
        {server, equities, equity_mids, 4, 0.01, &stop},
        {server, fx, fx_mids, 3, 0.00001, &stop},
    };
    pthread_t threads[2];
    for (int t = 0; t < 2; t++) {
        pthread_create(&threads[t], NULL, run_feed, &feeds[t]);
    }
    sleep_ms(1000L * seconds);
    stop = 1;
    for (int t = 0; t < 2; t++) {
        pthread_join(threads[t], NULL);
    }
    tickcast_server_free(server); /* closes subscribers with 1001, joins threads */
    return 0;
}
