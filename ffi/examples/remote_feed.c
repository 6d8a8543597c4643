/*
 * A feed handler in its own process publishing into a running tickcastd.
 *
 *   tickcastd --config tickcastd.toml          # with [auth] publisher_tokens = ["..."]
 *   ./remote_feed ws://127.0.0.1:8080/publish <token> [count]
 *
 * Publishes a simulated quote stream for three instruments, flushes, and
 * reports how many updates a dropped connection may have lost.
 */

/* nanosleep, rand_r and clock_gettime are POSIX, not ISO C: ask for them, so
 * `cc -std=c11` (the README's command) declares them. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tickcast.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ws://host:port/publish token [count]\n", argv[0]);
        return 2;
    }
    long count = argc > 3 ? atol(argv[3]) : 100000;
    tickcast_remote_publisher *pub = NULL;
    tickcast_result r = tickcast_remote_publisher_connect(argv[1], argv[2], &pub);
    if (r != TICKCAST_RESULT_OK) {
        fprintf(stderr, "connect: %s\n", tickcast_result_str(r));
        return 1;
    }
    static const char *const topics[] = {"FEED.ES", "FEED.NQ", "FEED.CL"};
    double mids[] = {5245.25, 18320.5, 81.35};
    for (long i = 0; i < count; i++) {
        int k = (int)(i % 3);
        mids[k] += (i % 7 < 4) ? 0.25 : -0.25;
        tickcast_update u;
        memset(&u, 0, sizeof u);
        u.fields = TICKCAST_FIELD_BID | TICKCAST_FIELD_ASK;
        u.bid = mids[k] - 0.25;
        u.ask = mids[k] + 0.25;
        r = tickcast_remote_publish(pub, topics[k], &u);
        if (r != TICKCAST_RESULT_OK) {
            fprintf(stderr, "publish: %s\n", tickcast_result_str(r));
            break;
        }
        if (i % 1000 == 999) {
            struct timespec ts = {0, 1000000}; /* pace: about 1M updates/s at most */
            nanosleep(&ts, NULL);
        }
    }
    r = tickcast_remote_flush(pub, 10000);
    uint64_t lost = 0;
    tickcast_remote_lost(pub, &lost);
    printf("published %ld updates, flush: %s, possibly lost: %llu\n", count, tickcast_result_str(r),
           (unsigned long long)lost);
    tickcast_remote_publisher_free(pub);
    return r == TICKCAST_RESULT_OK ? 0 : 1;
}
