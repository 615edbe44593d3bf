// ttrpc 1.1 (github.com/containerd/ttrpc, as used by containerd 1.6 and its shims) over unix
// sockets: the framing, the Request/Response envelopes, a multiplexing client and a server for
// the transport-agnostic service handlers of services/server/rpc.ts.
//
// Loading this module loads protobufjs/light (for the envelopes) and nothing else heavy: the wire
// Root (proto/) is loaded on the first typed call or service registration, koffi on the first
// peer-credential check.
export { TtrpcClient, TtrpcError, socketPathOf } from './client';
export type { CallOptions, ConnectOptions, TtrpcServiceClient, UnaryMethod } from './client';
export { TtrpcServer } from './server';
export type { ListenOptions, PeerCheck, TtrpcCallContext, TtrpcServerOptions } from './server';
export { FrameReader, HEADER_LENGTH, MAX_MESSAGE_LENGTH, MessageType, encodeFrame, oversizeMessage } from './frame';
export type { FrameHeader } from './frame';
export { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from './envelope';
export type { KeyValue, RequestEnvelope, ResponseEnvelope, StatusEnvelope } from './envelope';
export { peerCredentials, type PeerCredentials } from './peercred';
