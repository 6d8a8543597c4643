/*
 * tickcast_set_interest_callback: a feed handler told which topics and
 * patterns are wanted. The Rust test driving this program subscribes and
 * drops a WebSocket subscriber; the callback prints what it is told, and
 * answers the first subscriber of a topic with a price, as a feed handler
 * that subscribes upstream on demand would.
 *
 * Protocol with the driver, one line each on stdout/stdin:
 *   -> "PORT <n>"                       server started, callback set
 *   -> "INTEREST <selector> <pattern> <active>"   per event (0 or 1)
 *   <- "QUIT"                           free the server, check, exit 0
 *   -> "<n> passed, 0 failed"
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tickcast.h"
#include "check.h"

struct feed {
    tickcast_server *server;
    pthread_mutex_t lock;
    int events;
    int bad_user_data;
};

static struct feed feed = {NULL, PTHREAD_MUTEX_INITIALIZER, 0, 0};

static void on_interest(const char *selector, bool pattern, bool active, void *user_data) {
    struct feed *f = user_data;
    if (f != &feed) {
        feed.bad_user_data++;
        return;
    }
    pthread_mutex_lock(&f->lock);
    f->events++;
    pthread_mutex_unlock(&f->lock);
    printf("INTEREST %s %d %d\n", selector, pattern ? 1 : 0, active ? 1 : 0);
    fflush(stdout);
    if (active && !pattern) {
        /* "Upstream" answers at once: publishing from the callback is allowed. */
        tickcast_update u;
        memset(&u, 0, sizeof u);
        u.fields = TICKCAST_FIELD_BID;
        u.bid = 42.0;
        tickcast_publish(f->server, selector, &u);
    }
}

int main(void) {
    tickcast_config *cfg = tickcast_config_new();
    check(tickcast_config_set_listen(cfg, "127.0.0.1:0") == TICKCAST_RESULT_OK, "listen");
    check(tickcast_server_start(cfg, &feed.server) == TICKCAST_RESULT_OK, "server starts");
    tickcast_config_free(cfg);
    if (!feed.server) {
        return 1;
    }
    check(tickcast_set_interest_callback(NULL, on_interest, &feed) == TICKCAST_RESULT_NULL_PARAMETER,
          "NULL server");
    check(tickcast_set_interest_callback(feed.server, on_interest, &feed) == TICKCAST_RESULT_OK,
          "callback set");
    uint16_t port = 0;
    tickcast_server_port(feed.server, &port);
    printf("PORT %u\n", (unsigned)port);
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "QUIT", 4) == 0) {
            break;
        }
    }
    /* NULL stops the calls; freeing waits for a call in progress. */
    check(tickcast_set_interest_callback(feed.server, NULL, NULL) == TICKCAST_RESULT_OK, "callback cleared");
    tickcast_server_free(feed.server);
    pthread_mutex_lock(&feed.lock);
    check(feed.events >= 4, "the driver's four events were seen");
    pthread_mutex_unlock(&feed.lock);
    check(feed.bad_user_data == 0, "user_data passed back untouched");
    return report();
}
