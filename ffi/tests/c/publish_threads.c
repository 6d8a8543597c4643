/*
 * Publishes from four threads at once into an embedded tickcast server, each
 * thread with a different entry point, while a WebSocket subscriber (the Rust
 * test driving this program) checks that every update arrives in order.
 *
 * Protocol with the driver, one line each on stdout/stdin:
 *   -> "PORT <n>"   server started
 *   <- "GO"         subscriber is subscribed
 *   -> "DONE"       every update published
 *   <- "QUIT"       subscriber has everything; free the server and exit 0
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickcast.h"

#define PER_THREAD 2000
#define BATCH 50

static tickcast_server *server;

#define CHECK(call)                                                                  \
    do {                                                                             \
        tickcast_result r_ = (call);                                                 \
        if (r_ != TICKCAST_RESULT_OK) {                                              \
            fprintf(stderr, "%s:%d: %s -> %s\n", __FILE__, __LINE__, #call,          \
                    tickcast_result_str(r_));                                        \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static tickcast_update make(int i) {
    tickcast_update u;
    memset(&u, 0, sizeof u);
    u.fields = TICKCAST_FIELD_BID | TICKCAST_FIELD_ASK;
    u.bid = (double)i;
    u.ask = (double)i + 0.5;
    u.timestamp_ns = (uint64_t)i + 1;
    return u;
}

static void *publish_blocking(void *arg) {
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        tickcast_update u = make(i);
        CHECK(tickcast_publish(server, "C.0", &u));
    }
    return NULL;
}

static void *publish_trying(void *arg) {
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        tickcast_update u = make(i);
        tickcast_result r;
        while ((r = tickcast_try_publish(server, "C.1", &u)) == TICKCAST_RESULT_QUEUE_FULL) {
            sched_yield(); /* give the router the CPU instead of spinning */
        }
        CHECK(r);
    }
    return NULL;
}

static void *publish_batches(void *arg) {
    (void)arg;
    const char *topics[BATCH];
    tickcast_update updates[BATCH];
    for (int i = 0; i < PER_THREAD; i += BATCH) {
        for (int k = 0; k < BATCH; k++) {
            topics[k] = "C.2";
            updates[k] = make(i + k);
        }
        CHECK(tickcast_publish_batch(server, topics, updates, BATCH));
    }
    return NULL;
}

static void *publish_heap_topic(void *arg) {
    (void)arg;
    /* The library copies the topic: freeing it right after the call is fine. */
    for (int i = 0; i < PER_THREAD; i++) {
        char *topic = malloc(8);
        strcpy(topic, "C.3");
        tickcast_update u = make(i);
        CHECK(tickcast_publish(server, topic, &u));
        free(topic);
    }
    return NULL;
}

static void expect_line(const char *want) {
    char line[64];
    if (!fgets(line, sizeof line, stdin) || strncmp(line, want, strlen(want)) != 0) {
        fprintf(stderr, "expected %s on stdin\n", want);
        exit(1);
    }
}

int main(void) {
    tickcast_config *cfg = tickcast_config_new();
    if (!cfg) {
        return 1;
    }
    /* The checking subscriber is a debug build on a shared machine: a high
     * conflation mark keeps a slow moment of it from skipping updates. The
     * setters below apply on top of the loaded file. */
    char why[256];
    if (tickcast_config_load_toml(cfg,
                                  "[limits]\nconflate_bytes = 67108864\n"
                                  "max_outbound_bytes = 134217728\n",
                                  why, sizeof why) != TICKCAST_RESULT_OK) {
        fprintf(stderr, "config: %s\n", why);
        return 1;
    }
    CHECK(tickcast_config_set_listen(cfg, "127.0.0.1:0"));
    CHECK(tickcast_config_set_shards(cfg, 2));
    /* A small queue so the try-publisher really meets "full". */
    CHECK(tickcast_config_set_ingest_capacity(cfg, 64));
    CHECK(tickcast_server_start(cfg, &server));
    tickcast_config_free(cfg);

    uint16_t port = 0;
    CHECK(tickcast_server_port(server, &port));
    printf("PORT %u\n", (unsigned)port);
    fflush(stdout);
    expect_line("GO");

    pthread_t threads[4];
    void *(*bodies[4])(void *) = {publish_blocking, publish_trying, publish_batches, publish_heap_topic};
    for (int t = 0; t < 4; t++) {
        if (pthread_create(&threads[t], NULL, bodies[t], NULL) != 0) {
            return 1;
        }
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
    }
    /* Topic operations, in order after every update above: the subscriber
     * sees C.0 go stale and live, C.1 cleared and restarted at seq 1. */
    CHECK(tickcast_mark_stale(server, "C.0"));
    CHECK(tickcast_mark_live(server, "C.0"));
    CHECK(tickcast_clear(server, "C.1"));
    tickcast_update again = make(41);
    CHECK(tickcast_publish(server, "C.1", &again));
    printf("DONE\n");
    fflush(stdout);
    expect_line("QUIT");
    tickcast_server_free(server);
    return 0;
}
