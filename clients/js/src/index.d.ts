// Type definitions for tickcast-client.

export declare const FIELDS: readonly ["bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume"];
export type Field = (typeof FIELDS)[number];
export type Fields = Partial<Record<Field, number>>;

/** The checksum of a book's top levels (docs/PROTOCOL.md), for [price, size] pairs best first. */
export declare function bookChecksum(bids: [number, number][], asks: [number, number][]): number;

export declare class TickcastError extends Error {
  /** The protocol's error code: bad_json, bad_request, bad_topic, too_many_subscriptions, ... */
  code: string;
}

export interface ClientOptions {
  /** Subscriber token; sent as ?token= (browsers cannot set headers on WebSockets). */
  token?: string;
  /** "json" (default) or "msgpack" (needs `msgpack`). */
  format?: "json" | "msgpack";
  /** A WebSocket constructor; default globalThis.WebSocket (Node 20: pass the `ws` package's). */
  WebSocket?: any;
  /** MessagePack codec, e.g. `import { encode, decode, decodeMulti } from "@msgpack/msgpack"`
   * (batches in MessagePack need `decodeMulti`). */
  msgpack?: {
    encode(v: unknown): Uint8Array;
    decode(b: Uint8Array): unknown;
    decodeMulti?(b: Uint8Array): Iterable<unknown>;
  };
  /** Reconnect delays in ms: doubling from min to max (defaults 100, 5000). */
  minBackoff?: number;
  maxBackoff?: number;
  /** Application-level ping period in ms (default 20000); no reply: reconnect. */
  pingInterval?: number;
  /** How long a command waits for its reply, ms (default 10000). */
  commandTimeout?: number;
  /** Reconnect by itself (default true). */
  reconnect?: boolean;
  /** Ask for several events per message (`tickcast.json+batch`; default true). */
  batch?: boolean;
  /** Ask the server to send at most this many bytes a second; updates beyond it are merged. */
  maxBytesPerSec?: number;
}

export interface TopicState { seq: number; epoch?: string; stale: boolean }

export type ClientEvent =
  | { type: "snapshot"; topic: string; seq: number; epoch: string; stale: boolean; fields: Fields }
  | { type: "update"; topic: string; seq: number; fields: Fields; conflated: number; epoch?: string }
  | { type: "book" | "book_update"; topic: string; seq: number; conflated: number; depth: number; bids: [number, number][]; asks: [number, number][] }
  | { type: "status"; topic: string; stale: boolean }
  | { type: "cleared"; topic: string }
  | { type: "gap"; topic: string; expected: number; got: number | "checksum" }
  | { type: "disconnected"; reason: string }
  | { type: "reconnected"; recovered: string[] }
  | { type: "closed" };

export interface SubscribedReply {
  event: "subscribed";
  id: number;
  topics: string[];
  epochs?: Record<string, string>;
  recovered?: string[];
}

export declare class Client {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  /** Merged value of each topic received. */
  readonly values: Map<string, Fields>;
  /** The server agreed to batches on the current connection. */
  readonly batching: boolean;
  /** Bytes of messages received (after decompression). */
  readonly bytesReceived: number;
  /** seq, epoch and stale of each topic received. */
  readonly topics: Map<string, TopicState>;
  connect(): Promise<void>;
  close(): void;
  /** `depth`: levels per side of `….book` topics (10, 25, 100, 500 or 1000; default 10). */
  subscribe(topics: string[], options?: { maxRate?: number; depth?: number }): Promise<SubscribedReply>;
  /** A book topic's levels, best first, as [price, size] pairs. */
  book(topic: string): { bids: [number, number][]; asks: [number, number][]; depth: number } | undefined;
  /** Books of the `….book` topics received, price -> size per side. */
  books: Map<string, { bids: Map<number, number>; asks: Map<number, number>; depth: number }>;
  unsubscribe(topics: string[]): Promise<{ event: "unsubscribed"; id: number; topics: string[] }>;
  listTopics(prefix?: string): Promise<string[]>;
  /** Server clock, ns since the epoch (beyond 2^53: rounded by JSON.parse). */
  ping(): Promise<number>;
  on<T extends ClientEvent["type"]>(type: T, listener: (ev: Extract<ClientEvent, { type: T }>) => void): () => void;
  on(type: "*", listener: (ev: ClientEvent) => void): () => void;
}
