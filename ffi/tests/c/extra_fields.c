/*
 * Extra fields ([fields] extra) from C: looked up by name once, then set by
 * index in tickcast_update, both in process and through a remote publisher
 * connected to the same server. The Rust driver's subscriber checks that
 * they arrive by name.
 *
 * Protocol: -> "PORT <n>" once both topics are published;
 *           <- "QUIT"; -> "<n> passed, 0 failed".
 */
#include <stdio.h>
#include <string.h>

#include "tickcast.h"
#include "check.h"

int main(void) {
    tickcast_config *cfg = tickcast_config_new();
    char msg[256];
    const char *toml =
        "listen = \"127.0.0.1:0\"\n"
        "[auth]\npublisher_tokens = [\"c-extra-publisher\"]\n"
        "[fields]\nextra = [\"open_interest\", \"iv\", \"delta\"]\n";
    check(tickcast_config_load_toml(cfg, toml, msg, sizeof msg) == TICKCAST_RESULT_OK, "TOML");
    check(tickcast_config_load_toml(cfg, "[fields]\nextra = [\"bid\"]\n", msg, sizeof msg) ==
              TICKCAST_RESULT_INVALID_ARGUMENT,
          "a field named like a price field is refused");
    check(strstr(msg, "fields.extra") != NULL, "the message names the key");
    tickcast_server *server = NULL;
    check(tickcast_server_start(cfg, &server) == TICKCAST_RESULT_OK, "server starts");
    tickcast_config_free(cfg);
    if (!server) {
        return 1;
    }
    uint32_t iv = 99, delta = 99, none = 99;
    check(tickcast_server_field(server, "iv", &iv) == TICKCAST_RESULT_OK && iv == 1, "iv is 1");
    check(tickcast_server_field(server, "delta", &delta) == TICKCAST_RESULT_OK && delta == 2,
          "delta is 2");
    check(tickcast_server_field(server, "gamma", &none) == TICKCAST_RESULT_INVALID_ARGUMENT &&
              none == 99,
          "unknown name, nothing written");
    check(tickcast_server_field(NULL, "iv", &none) == TICKCAST_RESULT_NULL_PARAMETER, "NULL server");
    check(tickcast_server_field(server, NULL, &none) == TICKCAST_RESULT_NULL_PARAMETER, "NULL name");
    check(tickcast_server_field(server, "iv", NULL) == TICKCAST_RESULT_NULL_PARAMETER, "NULL out");

    tickcast_update u;
    memset(&u, 0, sizeof u);
    u.fields = TICKCAST_FIELD_LAST;
    u.last = 12.5;
    u.extra_fields = (1u << iv) | (1u << delta);
    u.extra[iv] = 0.31;
    u.extra[delta] = -0.42;
    check(tickcast_publish(server, "OPT.C", &u) == TICKCAST_RESULT_OK, "in process");
    u.extra_fields = 1u << 9;
    check(tickcast_publish(server, "OPT.C", &u) == TICKCAST_RESULT_INVALID_ARGUMENT,
          "an index past TICKCAST_MAX_EXTRA");

    uint16_t port = 0;
    tickcast_server_port(server, &port);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/publish", (unsigned)port);
    tickcast_remote_publisher *remote = NULL;
    check(tickcast_remote_publisher_connect(url, "c-extra-publisher", &remote) == TICKCAST_RESULT_OK,
          "remote connects");
    if (remote) {
        uint32_t oi = 99;
        check(tickcast_remote_field(remote, "open_interest", &oi) == TICKCAST_RESULT_OK && oi == 0,
              "the remote publisher learnt the names");
        check(tickcast_remote_field(remote, "gamma", &oi) == TICKCAST_RESULT_INVALID_ARGUMENT,
              "unknown name remotely");
        memset(&u, 0, sizeof u);
        u.extra_fields = 1u << oi;
        u.extra[oi] = 1500.0;
        check(tickcast_remote_publish(remote, "OPT.R", &u) == TICKCAST_RESULT_OK, "remote publish");
        check(tickcast_remote_flush(remote, 5000) == TICKCAST_RESULT_OK, "flushed");
    }
    printf("PORT %u\n", (unsigned)port);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "QUIT", 4) == 0) {
            break;
        }
    }
    tickcast_remote_publisher_free(remote);
    tickcast_server_free(server);
    return report();
}
