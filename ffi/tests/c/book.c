/*
 * tickcast_publish_levels: a C feed handler publishing an order book.
 * Bad arguments are refused with their result codes; a full book and then
 * a change are published for the Rust driver's WebSocket subscriber, which
 * checks the book, the book_update and their checksums.
 *
 * Protocol with the driver, one line each on stdout/stdin:
 *   -> "PORT <n>"      server started, the full book published
 *   <- "CHANGE"        publish a change (a level removed, one added)
 *   <- "QUIT"          free the server, exit
 *   -> "<n> passed, 0 failed"
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tickcast.h"
#include "check.h"

int main(void) {
    tickcast_config *cfg = tickcast_config_new();
    tickcast_server *server = NULL;
    check(tickcast_config_set_listen(cfg, "127.0.0.1:0") == TICKCAST_RESULT_OK, "listen");
    check(tickcast_server_start(cfg, &server) == TICKCAST_RESULT_OK, "server starts");
    tickcast_config_free(cfg);
    if (!server) {
        return 1;
    }
    tickcast_level book[24];
    for (int i = 0; i < 12; i++) {
        book[i].side = TICKCAST_SIDE_BID;
        book[i].price = 99.0 - i;
        book[i].size = 1.0 + i;
        book[12 + i].side = TICKCAST_SIDE_ASK;
        book[12 + i].price = 101.0 + i;
        book[12 + i].size = 2.0 + i;
    }
    /* Refusals first: nothing of these is published. */
    check(tickcast_publish_levels(NULL, "C.book", book, 24, 0) == TICKCAST_RESULT_NULL_PARAMETER,
          "NULL server");
    check(tickcast_publish_levels(server, NULL, book, 24, 0) == TICKCAST_RESULT_NULL_PARAMETER,
          "NULL topic");
    check(tickcast_publish_levels(server, "C.book", NULL, 3, 0) == TICKCAST_RESULT_NULL_PARAMETER,
          "NULL levels with a count");
    check(tickcast_publish_levels(server, "C.book", book, 24, 8) == TICKCAST_RESULT_INVALID_ARGUMENT,
          "unknown flag");
    check(tickcast_publish_levels(server, "C.book", NULL, 0, 0) == TICKCAST_RESULT_EMPTY_UPDATE,
          "no levels, no replace");
    check(tickcast_publish_levels(server, "C.prices", book, 24, 0) == TICKCAST_RESULT_INVALID_BOOK,
          "levels for a topic that is not a book");
    tickcast_level bad = {7, 100.0, 1.0};
    check(tickcast_publish_levels(server, "C.book", &bad, 1, 0) == TICKCAST_RESULT_INVALID_ARGUMENT,
          "unknown side");
    bad.side = TICKCAST_SIDE_BID;
    bad.price = NAN;
    check(tickcast_publish_levels(server, "C.book", &bad, 1, 0) == TICKCAST_RESULT_INVALID_BOOK,
          "NaN price");
    bad.price = 100.0;
    bad.size = -1.0;
    check(tickcast_publish_levels(server, "C.book", &bad, 1, 0) == TICKCAST_RESULT_INVALID_BOOK,
          "negative size");
    check(strstr(tickcast_result_str(TICKCAST_RESULT_INVALID_BOOK), "book") != NULL,
          "a readable message");
    /* The whole book, replacing whatever was there. */
    check(tickcast_publish_levels(server, "C.book", book, 24, TICKCAST_LEVELS_REPLACE) ==
              TICKCAST_RESULT_OK,
          "full book");
    uint16_t port = 0;
    tickcast_server_port(server, &port);
    printf("PORT %u\n", (unsigned)port);
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "CHANGE", 6) == 0) {
            /* The best bid goes; a better ask arrives. */
            tickcast_level change[2] = {{TICKCAST_SIDE_BID, 99.0, 0.0}, {TICKCAST_SIDE_ASK, 100.5, 4.0}};
            check(tickcast_publish_levels(server, "C.book", change, 2, 0) == TICKCAST_RESULT_OK,
                  "change");
        } else if (strncmp(line, "QUIT", 4) == 0) {
            break;
        }
    }
    tickcast_server_free(server);
    return report();
}
