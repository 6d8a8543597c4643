//! Where Redis is: one server (`redis://HOST:PORT`) or a Redis Cluster
//! (`redis+cluster://HOST:PORT,HOST:PORT,...`, its seed nodes); `rediss`
//! for either over TLS (rustls), trusting a CA file or the system's roots. Commands
//! go through the cluster client, which routes each by the slot of its
//! keys (all keys of a topic share one slot: `store`); pub/sub goes through
//! a plain connection to one node, since Redis Cluster carries classic
//! pub/sub messages to every node.

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Cmd, ConnectionLike, RedisResult, Value};
use std::time::Duration;

/// How long connecting, and each command, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The schemes of a Redis Cluster's seed list, plain and over TLS.
const CLUSTER_SCHEME: &str = "redis+cluster://";
const CLUSTER_TLS_SCHEME: &str = "rediss+cluster://";

#[derive(Clone)]
pub(crate) enum Endpoint {
    Single(redis::Client),
    Cluster {
        cluster: ClusterClient,
        /// Seed nodes, tried in turn for the pub/sub connection.
        seeds: Vec<redis::Client>,
    },
}

/// A command connection to either.
pub(crate) enum Con {
    Single(redis::Connection),
    Cluster(Box<ClusterConnection>),
}

impl Endpoint {
    /// Parses the `redis` setting; `ca` (PEM) is the authority a TLS
    /// Redis's certificate must chain to (None: the system's roots).
    pub fn parse(url: &str, ca: Option<Vec<u8>>) -> RedisResult<Endpoint> {
        let client = |url: &str| match &ca {
            Some(pem) if url.starts_with("rediss://") => {
                redis::Client::build_with_tls(url, certs(pem.clone()))
            }
            _ => redis::Client::open(url),
        };
        let (list, scheme) = match (
            url.strip_prefix(CLUSTER_SCHEME),
            url.strip_prefix(CLUSTER_TLS_SCHEME),
        ) {
            (Some(list), _) => (list, "redis"),
            (_, Some(list)) => (list, "rediss"),
            _ => return Ok(Endpoint::Single(client(url)?)),
        };
        let urls: Vec<String> = list
            .split(',')
            .map(|hp| format!("{scheme}://{}", hp.trim()))
            .collect();
        let seeds = urls
            .iter()
            .map(|u| client(u))
            .collect::<RedisResult<Vec<_>>>()?;
        let mut builder = ClusterClient::builder(urls)
            .connection_timeout(TIMEOUT)
            .response_timeout(TIMEOUT)
            .retries(2);
        if let Some(pem) = ca {
            builder = builder.certs(certs(pem));
        }
        Ok(Endpoint::Cluster {
            cluster: builder.build()?,
            seeds,
        })
    }

    /// A connection for commands and pipelines.
    pub fn command(&self) -> RedisResult<Con> {
        match self {
            Endpoint::Single(c) => {
                let con = c.get_connection_with_timeout(Duration::from_secs(1))?;
                con.set_read_timeout(Some(TIMEOUT))?;
                con.set_write_timeout(Some(TIMEOUT))?;
                Ok(Con::Single(con))
            }
            Endpoint::Cluster { cluster, .. } => {
                Ok(Con::Cluster(Box::new(cluster.get_connection()?)))
            }
        }
    }

    /// A connection for pub/sub: to the server, or to the first seed node
    /// that answers.
    pub fn pubsub(&self) -> RedisResult<redis::Connection> {
        let timeout = Duration::from_secs(1);
        match self {
            Endpoint::Single(c) => c.get_connection_with_timeout(timeout),
            Endpoint::Cluster { seeds, .. } => {
                let mut last = None;
                for s in seeds {
                    match s.get_connection_with_timeout(timeout) {
                        Ok(c) => return Ok(c),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Client, "no seed node"))
                }))
            }
        }
    }
}

/// A CA to trust, for the redis crate.
fn certs(pem: Vec<u8>) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }
}

impl Con {
    /// The connection as the commands' common interface.
    pub fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Con::Single(c) => c,
            Con::Cluster(c) => &mut **c,
        }
    }

    /// Sends `cmds` in one pipeline (per node, for a cluster) and returns
    /// their replies in order.
    pub fn query_all<T: redis::FromRedisValue>(&mut self, cmds: Vec<Cmd>) -> RedisResult<Vec<T>> {
        match self {
            Con::Single(c) => {
                let mut p = redis::pipe();
                for cmd in cmds {
                    p.add_command(cmd);
                }
                p.query(c)
            }
            Con::Cluster(c) => {
                let mut p = redis::cluster::cluster_pipe();
                for cmd in cmds {
                    p.add_command(cmd);
                }
                p.query(c)
            }
        }
    }

    /// Starts a pipeline. On one server it is sent and not waited for: its
    /// replies are read later by `finish`, so the next pipeline can be
    /// built and sent while Redis runs this one. A cluster connection
    /// routes per node and runs it at once.
    pub fn start(&mut self, cmds: Vec<Cmd>) -> RedisResult<Started> {
        match self {
            Con::Single(c) => {
                let n = cmds.len();
                let mut p = redis::pipe();
                for cmd in cmds {
                    p.add_command(cmd);
                }
                c.send_packed_command(&p.get_packed_pipeline())?;
                Ok(Started::Pending(n))
            }
            Con::Cluster(_) => Ok(Started::Done(self.query_all(cmds)?)),
        }
    }

    /// Reads the `n` replies of the oldest pipeline `start` left pending.
    /// Every reply is read (so the next pipeline's stay in step) before a
    /// refusal among them is returned.
    pub fn finish(&mut self, n: usize) -> RedisResult<Vec<Value>> {
        let Con::Single(c) = self else {
            return Ok(Vec::new());
        };
        let replies = (0..n)
            .map(|_| c.recv_response())
            .collect::<RedisResult<Vec<Value>>>()?;
        if let Some(Value::ServerError(e)) =
            replies.iter().find(|v| matches!(v, Value::ServerError(_)))
        {
            return Err(e.clone().into());
        }
        Ok(replies)
    }
}

/// A pipeline `Con::start` began.
pub(crate) enum Started {
    /// Sent; this many replies to read with `finish`.
    Pending(usize),
    /// Run already (a cluster connection): its replies.
    Done(Vec<Value>),
}
