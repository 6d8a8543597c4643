// A C++ feed handler with RAII wrappers around the tickcast handles.
//
//   make -C ffi/examples
//   ./ffi/examples/feed_handler_cpp [seconds] [listen-address]
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "tickcast.h"

namespace tickcast {

// Thrown for any result other than TICKCAST_RESULT_OK.
class Error : public std::runtime_error {
  public:
    explicit Error(tickcast_result r) : std::runtime_error(tickcast_result_str(r)), code(r) {}
    tickcast_result code;
};

inline void check(tickcast_result r) {
    if (r != TICKCAST_RESULT_OK) throw Error(r);
}

class Config {
  public:
    Config() : cfg_(tickcast_config_new(), &tickcast_config_free) {
        if (!cfg_) throw std::bad_alloc();
    }
    Config &listen(const std::string &addr) {
        check(tickcast_config_set_listen(cfg_.get(), addr.c_str()));
        return *this;
    }
    Config &shards(uint32_t n) {
        check(tickcast_config_set_shards(cfg_.get(), n));
        return *this;
    }
    const tickcast_config *get() const { return cfg_.get(); }

  private:
    std::unique_ptr<tickcast_config, decltype(&tickcast_config_free)> cfg_;
};

// Owns a running server; the destructor shuts it down and joins its threads.
class Server {
  public:
    explicit Server(const Config &cfg) : srv_(nullptr, &tickcast_server_free) {
        tickcast_server *raw = nullptr;
        check(tickcast_server_start(cfg.get(), &raw));
        srv_.reset(raw);
    }
    uint16_t port() const {
        uint16_t p = 0;
        check(tickcast_server_port(srv_.get(), &p));
        return p;
    }
    // Thread-safe; waits while the ingest queue is full.
    void publish(const std::string &topic, const tickcast_update &u) {
        check(tickcast_publish(srv_.get(), topic.c_str(), &u));
    }
    // Returns false instead of waiting when the queue is full.
    bool try_publish(const std::string &topic, const tickcast_update &u) {
        tickcast_result r = tickcast_try_publish(srv_.get(), topic.c_str(), &u);
        if (r == TICKCAST_RESULT_QUEUE_FULL) return false;
        check(r);
        return true;
    }

  private:
    std::unique_ptr<tickcast_server, decltype(&tickcast_server_free)> srv_;
};

inline tickcast_update quote(double bid, double ask) {
    tickcast_update u{};
    u.fields = TICKCAST_FIELD_BID | TICKCAST_FIELD_ASK;
    u.bid = bid;
    u.ask = ask;
    return u;
}

}  // namespace tickcast

int main(int argc, char **argv) {
    int seconds = argc > 1 ? std::stoi(argv[1]) : 3600;
    std::string listen = argc > 2 ? argv[2] : "127.0.0.1:8091";
    try {
        tickcast::Server server(tickcast::Config().listen(listen).shards(1));
        std::printf("serving on ws://127.0.0.1:%u/ws for %d s\n", server.port(), seconds);
        std::fflush(stdout);
        double mid = 5245.25;
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        for (int i = 0; std::chrono::steady_clock::now() < end; i++) {
            mid += (i % 5 < 2) ? 0.25 : -0.25;
            server.publish("FUT.ES", tickcast::quote(mid - 0.25, mid + 0.25));
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        try {
            server.publish("bad topic", tickcast::quote(1, 2));
        } catch (const tickcast::Error &e) {
            std::printf("rejected as expected: %s\n", e.what());
        }
    } catch (const tickcast::Error &e) {
        std::fprintf(stderr, "tickcast: %s\n", e.what());
        return 1;
    }
    return 0;
}
