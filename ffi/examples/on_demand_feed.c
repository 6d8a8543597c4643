/*
 * A C feed handler that subscribes upstream on demand: its (simulated)
 * upstream offers many symbols and charges per subscription, so it asks
 * upstream only for the symbols tickcast's subscribers want, as
 * tickcast_set_interest_callback tells it, and drops them when the last
 * subscriber leaves. A pattern subscription (e.g. "OD.*") wants every
 * symbol it covers.
 *
 *   make -C ffi/examples
 *   ./ffi/examples/on_demand_feed [seconds] [listen-address]
 *
 * Then subscribe to, say, OD.SYM3: the feed prints "upstream: subscribe
 * OD.SYM3" and starts publishing it; nothing else is published.
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

#define SYMBOLS 20

struct upstream {
    pthread_mutex_t lock;
    char names[SYMBOLS][16];
    int exact[SYMBOLS];    /* wanted by name (0 or 1) */
    int patterns[SYMBOLS]; /* wanted patterns that cover it */
    double mids[SYMBOLS];
};

static struct upstream up = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int wanted(int i) { return up.exact[i] || up.patterns[i] > 0; }

/* Called on tickcast's interest thread; it holds no tickcast lock. */
static void on_interest(const char *selector, bool pattern, bool active, void *user_data) {
    (void)user_data;
    size_t plen = pattern ? strlen(selector) - 1 : 0; /* without the '*' */
    pthread_mutex_lock(&up.lock);
    for (int i = 0; i < SYMBOLS; i++) {
        int before = wanted(i);
        if (!pattern && strcmp(selector, up.names[i]) == 0) {
            up.exact[i] = active;
        } else if (pattern && strncmp(selector, up.names[i], plen) == 0) {
            up.patterns[i] += active ? 1 : -1;
        }
        if (before != wanted(i)) {
            printf("upstream: %s %s\n", wanted(i) ? "subscribe" : "unsubscribe", up.names[i]);
            fflush(stdout);
        }
    }
    pthread_mutex_unlock(&up.lock);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 3600;
    const char *listen = argc > 2 ? argv[2] : "127.0.0.1:8091";
    for (int i = 0; i < SYMBOLS; i++) {
        snprintf(up.names[i], sizeof up.names[i], "OD.SYM%d", i);
        up.mids[i] = 100.0 + i;
    }
    tickcast_config *cfg = tickcast_config_new();
    tickcast_server *server = NULL;
    if (!cfg || tickcast_config_set_listen(cfg, listen) != TICKCAST_RESULT_OK ||
        tickcast_server_start(cfg, &server) != TICKCAST_RESULT_OK) {
        fprintf(stderr, "cannot start the server on %s\n", listen);
        return 1;
    }
    tickcast_config_free(cfg);
    tickcast_set_interest_callback(server, on_interest, NULL);
    uint16_t port = 0;
    tickcast_server_port(server, &port);
    printf("on-demand feed on ws://127.0.0.1:%u/ws for %d s\n", (unsigned)port, seconds);
    fflush(stdout);

    unsigned seed = 7;
    time_t end = time(NULL) + seconds;
    while (time(NULL) < end) {
        for (int i = 0; i < SYMBOLS; i++) {
            pthread_mutex_lock(&up.lock);
            int on = wanted(i);
            up.mids[i] += ((double)(rand_r(&seed) % 21) - 10.0) * 0.01;
            double mid = up.mids[i];
            pthread_mutex_unlock(&up.lock);
            if (!on) {
                continue; /* not subscribed upstream: nothing arrives */
            }
            tickcast_update u;
            memset(&u, 0, sizeof u);
            u.fields = TICKCAST_FIELD_BID | TICKCAST_FIELD_ASK;
            u.bid = mid - 0.01;
            u.ask = mid + 0.01;
            tickcast_publish(server, up.names[i], &u);
        }
        sleep_ms(10);
    }
    tickcast_server_free(server);
    return 0;
}
