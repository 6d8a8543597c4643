/*
 * A separate C publisher process publishing into a separate tickcastd, from
 * two threads (one topic each), driven by the Rust test in c_api.rs:
 *   argv: url token
 *   <- "GO"        the subscriber is subscribed
 *   -> "DONE n"    flushed; n = updates possibly lost (must be 0)
 * Also checks the NULL / bad-argument paths of the remote API.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickcast.h"

#define PER_THREAD 3000

static tickcast_remote_publisher *pub;

static void *run(void *arg) {
    const char *topic = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        tickcast_update u;
        memset(&u, 0, sizeof u);
        u.fields = TICKCAST_FIELD_BID;
        u.bid = (double)i;
        u.timestamp_ns = (uint64_t)i + 1;
        tickcast_result r = tickcast_remote_publish(pub, topic, &u);
        if (r != TICKCAST_RESULT_OK) {
            fprintf(stderr, "publish: %s\n", tickcast_result_str(r));
            exit(1);
        }
    }
    return NULL;
}

static int check(tickcast_result got, tickcast_result want, const char *what) {
    if (got != want) {
        fprintf(stderr, "%s: got %s, want %s\n", what, tickcast_result_str(got), tickcast_result_str(want));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        return 2;
    }
    int bad = 0;
    tickcast_remote_publisher *none = NULL;
    tickcast_update u;
    memset(&u, 0, sizeof u);
    bad |= check(tickcast_remote_publisher_connect(NULL, argv[2], &none), TICKCAST_RESULT_NULL_PARAMETER, "NULL url");
    bad |= check(tickcast_remote_publisher_connect(argv[1], NULL, &none), TICKCAST_RESULT_NULL_PARAMETER, "NULL token");
    bad |= check(tickcast_remote_publisher_connect(argv[1], argv[2], NULL), TICKCAST_RESULT_NULL_PARAMETER, "NULL out");
    bad |= check(tickcast_remote_publisher_connect("not a url", argv[2], &none), TICKCAST_RESULT_INVALID_ADDRESS, "bad url");
    /* A wrong token (HTTP 401) and a port where nothing listens are told apart. */
    bad |= check(tickcast_remote_publisher_connect(argv[1], "wrong-token-42", &none), TICKCAST_RESULT_REFUSED, "wrong token");
    bad |= check(tickcast_remote_publisher_connect("ws://127.0.0.1:1/publish", argv[2], &none), TICKCAST_RESULT_UNREACHABLE,
                 "nothing listening");
    bad |= none != NULL;
    bad |= check(tickcast_remote_publish(NULL, "A", &u), TICKCAST_RESULT_NULL_PARAMETER, "NULL publisher");
    bad |= check(tickcast_remote_flush(NULL, 1), TICKCAST_RESULT_NULL_PARAMETER, "NULL flush");
    tickcast_remote_publisher_free(NULL);

    tickcast_result r = tickcast_remote_publisher_connect(argv[1], argv[2], &pub);
    if (r != TICKCAST_RESULT_OK) {
        fprintf(stderr, "connect: %s\n", tickcast_result_str(r));
        return 1;
    }
    bad |= check(tickcast_remote_publish(pub, "bad topic", &u), TICKCAST_RESULT_INVALID_TOPIC, "bad topic");
    /* 100 bytes: over the server's limit (64), which it announced at connect,
     * so refused here rather than by the server with the batch it travels in. */
    char long_topic[101];
    memset(long_topic, 'L', 100);
    long_topic[100] = 0;
    bad |= check(tickcast_remote_publish(pub, long_topic, &u), TICKCAST_RESULT_INVALID_TOPIC, "topic over the server's limit");
    tickcast_update empty = u;
    empty.fields = 0;
    bad |= check(tickcast_remote_publish(pub, "RC.E", &empty), TICKCAST_RESULT_EMPTY_UPDATE, "empty update");
    bad |= check(tickcast_remote_publish(pub, NULL, &u), TICKCAST_RESULT_NULL_PARAMETER, "NULL topic");
    bad |= check(tickcast_remote_clear(NULL, "RC.X"), TICKCAST_RESULT_NULL_PARAMETER, "NULL clear publisher");
    bad |= check(tickcast_remote_clear(pub, NULL), TICKCAST_RESULT_NULL_PARAMETER, "NULL clear topic");
    bad |= check(tickcast_remote_clear(pub, "bad topic"), TICKCAST_RESULT_INVALID_TOPIC, "bad clear topic");
    if (bad) {
        return 1;
    }
    char line[32];
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "GO", 2) != 0) {
        return 1;
    }
    pthread_t a, b;
    pthread_create(&a, NULL, run, "RC.A");
    pthread_create(&b, NULL, run, "RC.B");
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    r = tickcast_remote_flush(pub, 20000);
    uint64_t lost = 99;
    tickcast_remote_lost(pub, &lost);
    printf("DONE %llu %s\n", (unsigned long long)lost, tickcast_result_str(r));
    fflush(stdout);
    tickcast_remote_publisher_free(pub);
    return r == TICKCAST_RESULT_OK ? 0 : 1;
}
