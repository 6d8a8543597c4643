/*
 * JWT settings through tickcast_config_load_toml, and a remote publisher
 * whose token may write only FX.*: an in-scope topic publishes, an
 * out-of-scope one is refused at the call with TICKCAST_RESULT_FORBIDDEN
 * and a readable message, and nothing is lost. Then tickcast_server_reload:
 * a bad configuration is refused with the reason and changes nothing; a
 * good one adds a static publisher token at once. Driven by c_api.rs:
 *   argv: secret_file publisher_jwt
 * Prints "N passed, 0 failed" when all checks pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tickcast.h"
#include "check.h"

static tickcast_update bid(double v) {
    tickcast_update u;
    memset(&u, 0, sizeof u);
    u.fields = TICKCAST_FIELD_BID;
    u.bid = v;
    return u;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        return 2;
    }
    char toml[1024];
    snprintf(toml, sizeof toml,
             "listen = \"127.0.0.1:0\"\n"
             "[auth]\njwt_hmac_secret_file = \"%s\"\nexpiry_grace_ms = 2000\n"
             "[limits]\nmax_commands_per_sec = 50\n",
             argv[1]);
    char message[256] = "";
    tickcast_config *cfg = tickcast_config_new();
    check(tickcast_config_load_toml(cfg, toml, message, sizeof message) == TICKCAST_RESULT_OK, message);
    /* A key file that does not exist fails at start, naming the file. */
    tickcast_config *missing = tickcast_config_new();
    check(tickcast_config_load_toml(missing, "[auth]\njwt_hmac_secret_file = \"/nonexistent/jwt.secret\"\n",
                                    message, sizeof message) == TICKCAST_RESULT_OK,
          "a missing key file parses");
    tickcast_server *none = NULL;
    check(tickcast_server_start(missing, &none) == TICKCAST_RESULT_INVALID_ARGUMENT && none == NULL,
          "a missing key file is refused at start");
    tickcast_config_free(missing);
    /* A bad value is refused with the key named. */
    check(tickcast_config_load_toml(cfg, "[limits]\nmax_commands_per_sec = -1\n", message, sizeof message) ==
              TICKCAST_RESULT_INVALID_ARGUMENT,
          "negative max_commands_per_sec refused");
    check(strstr(message, "max_commands_per_sec") != NULL, "the message names the key");

    tickcast_server *server = NULL;
    check(tickcast_server_start(cfg, &server) == TICKCAST_RESULT_OK, "server starts");
    tickcast_config_free(cfg);
    if (!server) {
        return 1;
    }
    uint16_t port = 0;
    tickcast_server_port(server, &port);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/publish", (unsigned)port);

    tickcast_remote_publisher *pub = NULL;
    check(tickcast_remote_publisher_connect(url, argv[2], &pub) == TICKCAST_RESULT_OK, "publisher JWT connects");
    if (!pub) {
        return 1;
    }
    tickcast_update u = bid(1.5);
    check(tickcast_remote_publish(pub, "FX.EURUSD", &u) == TICKCAST_RESULT_OK, "in-scope topic publishes");
    tickcast_result r = tickcast_remote_publish(pub, "EQ.AAPL", &u);
    check(r == TICKCAST_RESULT_FORBIDDEN, "out-of-scope topic is refused at the call");
    check(strstr(tickcast_result_str(r), "publish claim") != NULL, "the message says why");
    check(tickcast_remote_flush(pub, 5000) == TICKCAST_RESULT_OK, "flush");
    uint64_t lost = 1;
    check(tickcast_remote_lost(pub, &lost) == TICKCAST_RESULT_OK && lost == 0, "nothing lost");
    tickcast_remote_publisher_free(pub);

    /* A subscriber token does not open /publish. */
    tickcast_remote_publisher *wrong = NULL;
    check(tickcast_remote_publisher_connect(url, "not-a-publisher-token", &wrong) == TICKCAST_RESULT_REFUSED &&
              wrong == NULL,
          "a token that is not a publisher's is refused");

    /* Reload: a key file that cannot be read is refused, naming it. */
    tickcast_config *bad = tickcast_config_new();
    tickcast_config_load_toml(bad, "listen = \"127.0.0.1:0\"\n[auth]\njwt_hmac_secret_file = \"/nonexistent/jwt.secret\"\n",
                              message, sizeof message);
    check(tickcast_server_reload(server, bad, message, sizeof message) == TICKCAST_RESULT_INVALID_ARGUMENT,
          "a reload with a missing key file is refused");
    check(strstr(message, "/nonexistent/jwt.secret") != NULL, "the reload's message names the file");
    check(tickcast_server_reload(NULL, bad, message, sizeof message) == TICKCAST_RESULT_NULL_PARAMETER,
          "reload of a NULL server");
    check(tickcast_server_reload(server, NULL, message, sizeof message) == TICKCAST_RESULT_NULL_PARAMETER,
          "reload with a NULL configuration");
    tickcast_config_free(bad);
    tickcast_remote_publisher *stat = NULL;
    check(tickcast_remote_publisher_connect(url, "static-publisher-token", &stat) == TICKCAST_RESULT_REFUSED,
          "the static token is not accepted before the reload");
    /* A good reload adds a static publisher token beside the JWTs. */
    tickcast_config *next = tickcast_config_new();
    snprintf(toml, sizeof toml,
             "listen = \"127.0.0.1:0\"\n"
             "[auth]\njwt_hmac_secret_file = \"%s\"\npublisher_tokens = [\"static-publisher-token\"]\n",
             argv[1]);
    check(tickcast_config_load_toml(next, toml, message, sizeof message) == TICKCAST_RESULT_OK, message);
    check(tickcast_server_reload(server, next, message, sizeof message) == TICKCAST_RESULT_OK, message);
    tickcast_config_free(next);
    check(tickcast_remote_publisher_connect(url, "static-publisher-token", &stat) == TICKCAST_RESULT_OK,
          "the token the reload added publishes");
    if (stat) {
        check(tickcast_remote_publish(stat, "EQ.AAPL", &u) == TICKCAST_RESULT_OK, "a static token has no scope");
        check(tickcast_remote_flush(stat, 5000) == TICKCAST_RESULT_OK, "flush after reload");
        tickcast_remote_publisher_free(stat);
    }
    tickcast_server_free(server);
    return report();
}
