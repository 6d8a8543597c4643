/*
 * Every NULL and invalid-argument path of the C API returns its code, outputs
 * are untouched on failure, and a full queue returns the full code.
 * Prints "N passed, M failed" and exits non-zero on any failure.
 */
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tickcast.h"

static int passed, failed;

#define EXPECT(call, want)                                                                  \
    do {                                                                                    \
        tickcast_result got_ = (call);                                                      \
        if (got_ == (want)) {                                                               \
            passed++;                                                                       \
        } else {                                                                            \
            failed++;                                                                       \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s)\n", __FILE__,         \
                    __LINE__, #call, (int)got_, tickcast_result_str(got_), (int)(want),     \
                    tickcast_result_str(want));                                             \
        }                                                                                   \
    } while (0)

#define TRUE(cond)                                                                          \
    do {                                                                                    \
        if (cond) {                                                                         \
            passed++;                                                                       \
        } else {                                                                            \
            failed++;                                                                       \
            fprintf(stderr, "%s:%d: %s is false\n", __FILE__, __LINE__, #cond);             \
        }                                                                                   \
    } while (0)

int main(void) {
    tickcast_update u;
    memset(&u, 0, sizeof u);
    u.fields = TICKCAST_FIELD_BID;
    u.bid = 1.0;

    /* Freeing NULL is fine. */
    tickcast_config_free(NULL);
    tickcast_server_free(NULL);

    /* Every code has a readable message. */
    for (int r = TICKCAST_RESULT_OK; r <= TICKCAST_RESULT_TOO_MANY_TOPICS; r++) {
        const char *s = tickcast_result_str((tickcast_result)r);
        TRUE(s != NULL && strlen(s) > 0);
    }
    TRUE(strcmp(tickcast_result_str(TICKCAST_RESULT_QUEUE_FULL), "ingest queue is full") == 0);
    /* The library is the release the header describes. */
    TRUE(strcmp(tickcast_version(), TICKCAST_VERSION) == 0);
    TRUE(TICKCAST_VERSION_MAJOR == 0 && TICKCAST_VERSION_MINOR >= 1);

    /* Config setters. */
    tickcast_config *cfg = tickcast_config_new();
    TRUE(cfg != NULL);
    EXPECT(tickcast_config_set_listen(NULL, "127.0.0.1:0"), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_config_set_listen(cfg, NULL), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_config_set_listen(cfg, "not an address"), TICKCAST_RESULT_INVALID_ADDRESS);
    EXPECT(tickcast_config_set_listen(cfg, "127.0.0.1:\xff\xfe"), TICKCAST_RESULT_INVALID_UTF8);
    EXPECT(tickcast_config_set_shards(NULL, 1), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_config_set_shards(cfg, 0), TICKCAST_RESULT_INVALID_ARGUMENT);
    EXPECT(tickcast_config_set_shards(cfg, 65), TICKCAST_RESULT_INVALID_ARGUMENT);
    EXPECT(tickcast_config_set_routers(NULL, 1), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_config_set_routers(cfg, 0), TICKCAST_RESULT_INVALID_ARGUMENT);
    EXPECT(tickcast_config_set_routers(cfg, 17), TICKCAST_RESULT_INVALID_ARGUMENT);
    EXPECT(tickcast_config_set_routers(cfg, 3), TICKCAST_RESULT_OK);
    EXPECT(tickcast_config_set_ingest_capacity(NULL, 1), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_config_set_ingest_capacity(cfg, 0), TICKCAST_RESULT_INVALID_ARGUMENT);
    EXPECT(tickcast_config_set_listen(cfg, "127.0.0.1:0"), TICKCAST_RESULT_OK);
    EXPECT(tickcast_config_set_shards(cfg, 1), TICKCAST_RESULT_OK);
    EXPECT(tickcast_config_set_ingest_capacity(cfg, 1), TICKCAST_RESULT_OK);

    /* A whole configuration in tickcastd's TOML, with the reason when it is wrong. */
    char why[TICKCAST_MESSAGE_MAX];
    EXPECT(tickcast_config_load_toml(NULL, "", why, sizeof why), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_config_load_toml(cfg, NULL, why, sizeof why),
           TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_config_load_toml(cfg, "\xff", why, sizeof why), TICKCAST_RESULT_INVALID_UTF8);
    EXPECT(tickcast_config_load_toml(cfg,
                                     "listen = \"127.0.0.1:0\"\nshards = 1\ningest_capacity = 1\n"
                                     "[limits]\nmax_topic_len = 8\n",
                                     why, sizeof why),
           TICKCAST_RESULT_OK);
    TRUE(why[0] == '\0');
    /* A wrong one leaves the configuration as it was (max_topic_len = 8 is
     * checked by publishing below). */
    EXPECT(tickcast_config_load_toml(cfg, "shards = \"two\"\n", why, sizeof why),
           TICKCAST_RESULT_INVALID_ARGUMENT);
    TRUE(strstr(why, "shards") != NULL);
    EXPECT(tickcast_config_load_toml(cfg, "[limits]\nmax_topic_lenn = 3\n", why, sizeof why),
           TICKCAST_RESULT_INVALID_ARGUMENT);
    TRUE(strstr(why, "max_topic_lenn") != NULL);
    /* The unknown-key message lists every valid key; TICKCAST_MESSAGE_MAX
     * holds it whole (its last key is there, not cut mid-word). */
    EXPECT(tickcast_config_load_toml(cfg, "nonsense_key = 1\n", why, sizeof why),
           TICKCAST_RESULT_INVALID_ARGUMENT);
    TRUE(strlen(why) < sizeof why - 1);
    TRUE(strstr(why, "routers") != NULL && strstr(why, "`demo`") != NULL);
    char tiny[8];
    EXPECT(tickcast_config_load_toml(cfg, "shards = 0\n", tiny, sizeof tiny),
           TICKCAST_RESULT_INVALID_ARGUMENT);
    TRUE(strlen(tiny) == sizeof tiny - 1);
    EXPECT(tickcast_config_load_toml(cfg, "shards = 0\n", NULL, 0),
           TICKCAST_RESULT_INVALID_ARGUMENT);

    /* Start: NULL arguments, and the output is written only on success. */
    tickcast_server *server = (tickcast_server *)&passed; /* sentinel, must stay */
    EXPECT(tickcast_server_start(NULL, &server), TICKCAST_RESULT_NULL_PARAMETER);
    TRUE(server == (tickcast_server *)&passed);
    EXPECT(tickcast_server_start(cfg, NULL), TICKCAST_RESULT_NULL_PARAMETER);
    server = NULL;
    EXPECT(tickcast_server_start(cfg, &server), TICKCAST_RESULT_OK);
    TRUE(server != NULL);

    /* The same port again: an I/O error, output untouched. */
    uint16_t port = 0;
    EXPECT(tickcast_server_port(server, &port), TICKCAST_RESULT_OK);
    TRUE(port != 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    EXPECT(tickcast_config_set_listen(cfg, addr), TICKCAST_RESULT_OK);
    tickcast_server *second = NULL;
    EXPECT(tickcast_server_start(cfg, &second), TICKCAST_RESULT_IO_ERROR);
    TRUE(second == NULL);
    tickcast_config_free(cfg);

    EXPECT(tickcast_server_port(NULL, &port), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_server_port(server, NULL), TICKCAST_RESULT_NULL_PARAMETER);

    /* Publishing: NULLs, bad topics, bad UTF-8, bad values, unknown flags. */
    EXPECT(tickcast_publish(NULL, "A", &u), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_publish(server, NULL, &u), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_publish(server, "A", NULL), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_try_publish(NULL, "A", &u), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_try_publish(server, NULL, &u), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_try_publish(server, "A", NULL), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_publish(server, "", &u), TICKCAST_RESULT_INVALID_TOPIC);
    EXPECT(tickcast_publish(server, "has space", &u), TICKCAST_RESULT_INVALID_TOPIC);
    EXPECT(tickcast_publish(server, "FX.*", &u), TICKCAST_RESULT_INVALID_TOPIC);
    EXPECT(tickcast_publish(server, "A\xc3\x28", &u), TICKCAST_RESULT_INVALID_UTF8);
    char long_topic[100];
    memset(long_topic, 'A', sizeof long_topic - 1);
    long_topic[sizeof long_topic - 1] = 0;
    EXPECT(tickcast_publish(server, long_topic, &u), TICKCAST_RESULT_INVALID_TOPIC);
    /* max_topic_len = 8, from the TOML above. */
    EXPECT(tickcast_publish(server, "EIGHT.CH", &u), TICKCAST_RESULT_OK);
    EXPECT(tickcast_publish(server, "NINE.CHAR", &u), TICKCAST_RESULT_INVALID_TOPIC);
    tickcast_update bad = u;
    bad.bid = NAN;
    EXPECT(tickcast_publish(server, "A", &bad), TICKCAST_RESULT_INVALID_VALUE);
    bad = u;
    bad.fields |= TICKCAST_FIELD_ASK;
    bad.ask = INFINITY;
    EXPECT(tickcast_try_publish(server, "A", &bad), TICKCAST_RESULT_INVALID_VALUE);
    /* A NaN in a field that is not flagged is ignored. */
    bad = u;
    bad.ask = NAN;
    EXPECT(tickcast_publish(server, "A", &bad), TICKCAST_RESULT_OK);
    bad = u;
    bad.fields = 1u << 20;
    EXPECT(tickcast_publish(server, "A", &bad), TICKCAST_RESULT_INVALID_ARGUMENT);
    /* An update that sets no field is refused: it would tell nobody anything. */
    bad = u;
    bad.fields = 0;
    EXPECT(tickcast_publish(server, "A", &bad), TICKCAST_RESULT_EMPTY_UPDATE);
    EXPECT(tickcast_try_publish(server, "A", &bad), TICKCAST_RESULT_EMPTY_UPDATE);

    /* Topic operations: clear, stale, live, stale_after. */
    EXPECT(tickcast_clear(NULL, "A"), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_clear(server, NULL), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_clear(server, "has space"), TICKCAST_RESULT_INVALID_TOPIC);
    EXPECT(tickcast_clear(server, "A\xc3\x28"), TICKCAST_RESULT_INVALID_UTF8);
    EXPECT(tickcast_clear(server, "A"), TICKCAST_RESULT_OK);
    EXPECT(tickcast_mark_stale(NULL, "A"), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_mark_stale(server, NULL), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_mark_stale(server, "NINE.CHAR"), TICKCAST_RESULT_INVALID_TOPIC);
    EXPECT(tickcast_mark_stale(server, "A"), TICKCAST_RESULT_OK);
    EXPECT(tickcast_mark_live(NULL, "A"), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_mark_live(server, "A"), TICKCAST_RESULT_OK);
    EXPECT(tickcast_set_stale_after(NULL, "A", 100), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_set_stale_after(server, NULL, 100), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_set_stale_after(server, "A", 5000), TICKCAST_RESULT_OK);
    EXPECT(tickcast_set_stale_after(server, "A", 0), TICKCAST_RESULT_OK);

    /* Batches: checked whole before anything is queued. */
    const char *topics[3] = {"B1", "B2", "B 3"};
    tickcast_update ups[3] = {u, u, u};
    EXPECT(tickcast_publish_batch(NULL, topics, ups, 3), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_publish_batch(server, NULL, ups, 3), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_publish_batch(server, topics, NULL, 3), TICKCAST_RESULT_NULL_PARAMETER);
    EXPECT(tickcast_publish_batch(server, NULL, NULL, 0), TICKCAST_RESULT_OK);
    EXPECT(tickcast_publish_batch(server, topics, ups, 3), TICKCAST_RESULT_INVALID_TOPIC);
    topics[2] = NULL;
    EXPECT(tickcast_publish_batch(server, topics, ups, 3), TICKCAST_RESULT_NULL_PARAMETER);
    topics[2] = "B3";
    EXPECT(tickcast_publish_batch(server, topics, ups, 3), TICKCAST_RESULT_OK);

    /* A one-slot queue: a burst of try_publish must meet "full". */
    int full = 0, ok = 0;
    for (int i = 0; i < 1000000 && (full == 0 || ok == 0); i++) {
        tickcast_result r = tickcast_try_publish(server, "FULL", &u);
        if (r == TICKCAST_RESULT_QUEUE_FULL) {
            full++;
            sched_yield();
        } else if (r == TICKCAST_RESULT_OK) {
            ok++;
        } else {
            failed++;
        }
    }
    TRUE(full > 0);
    TRUE(ok > 0);

    tickcast_server_free(server);

    /* max_topics: a new topic past the limit gets its own code; a clear frees a place. */
    tickcast_config *small = tickcast_config_new();
    EXPECT(tickcast_config_load_toml(small, "listen = \"127.0.0.1:0\"\n[limits]\nmax_topics = 1\n",
                                     why, sizeof why),
           TICKCAST_RESULT_OK);
    tickcast_server *one = NULL;
    EXPECT(tickcast_server_start(small, &one), TICKCAST_RESULT_OK);
    tickcast_config_free(small);
    EXPECT(tickcast_publish(one, "T1", &u), TICKCAST_RESULT_OK);
    /* Publishing returns once queued; the router counts T1 a moment later
     * (up to 10 s on a loaded machine: 1 ms between tries). */
    tickcast_result r2 = TICKCAST_RESULT_OK;
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 10000 && r2 == TICKCAST_RESULT_OK; i++) {
        r2 = tickcast_publish(one, "T2", &u);
        if (r2 == TICKCAST_RESULT_OK) nanosleep(&ms, NULL);
    }
    EXPECT(r2, TICKCAST_RESULT_TOO_MANY_TOPICS);
    EXPECT(tickcast_publish(one, "T1", &u), TICKCAST_RESULT_OK);
    EXPECT(tickcast_clear(one, "T1"), TICKCAST_RESULT_OK);
    for (int i = 0; i < 200000 && r2 == TICKCAST_RESULT_TOO_MANY_TOPICS; i++) {
        r2 = tickcast_publish(one, "T2", &u);
        if (r2 != TICKCAST_RESULT_OK) sched_yield();
    }
    EXPECT(r2, TICKCAST_RESULT_OK);
    tickcast_server_free(one);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
