// grpc-js service definitions built from our protobufjs Root (no proto-loader, no second parse):
// used by berthd to serve and by the CLI and tests to call. Messages are decoded once, into the
// plain objects of codec.TO_OBJECT.
import type * as grpc from '@grpc/grpc-js';
import { messageType, serviceType } from './index';
import { TO_OBJECT, type Message } from './codec';

function serializer(typeName: string): (value: Message) => Buffer {
  const type = messageType(typeName);
  return (value) => Buffer.from(type.encode(type.fromObject(value)).finish());
}

function deserializer(typeName: string): (bytes: Buffer) => Message {
  const type = messageType(typeName);
  return (bytes) => type.toObject(type.decode(bytes), TO_OBJECT);
}

/** The grpc-js definition of one service of our Root: paths, streaming kinds and codecs. */
export function serviceDefinition(fullName: string): grpc.ServiceDefinition {
  const service = serviceType(fullName);
  const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const req = method.resolvedRequestType!.fullName.replace(/^\./, '');
    const res = method.resolvedResponseType!.fullName.replace(/^\./, '');
    definition[method.name] = {
      path: `/${fullName}/${method.name}`,
      requestStream: !!method.requestStream,
      responseStream: !!method.responseStream,
      requestSerialize: serializer(req),
      requestDeserialize: deserializer(req),
      responseSerialize: serializer(res),
      responseDeserialize: deserializer(res),
      originalName: method.name,
    };
  }
  return definition as grpc.ServiceDefinition;
}

