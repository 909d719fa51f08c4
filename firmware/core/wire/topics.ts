// WIRE.md "Topics". The prefix is configurable on both sides (default `gl`).

import { isDeviceId } from './ids.js';

export const DEFAULT_PREFIX = 'gl';

export { isDeviceId };

export const topics = {
  hello: (prefix: string, id: string) => `${prefix}/v1/hello/${id}`,
  pair: (prefix: string, id: string) => `${prefix}/v1/pair/${id}`,
  up: (prefix: string, id: string) => `${prefix}/v1/d/${id}/up`,
  down: (prefix: string, id: string) => `${prefix}/v1/d/${id}/down`,
  lwt: (prefix: string, id: string) => `${prefix}/v1/d/${id}/lwt`,
};

export const TopicKind = { hello: 1, pair: 2, up: 3, down: 4, lwt: 5 } as const;
export type TopicKindValue = (typeof TopicKind)[keyof typeof TopicKind];

/** Splits a topic into its kind and device id, or undefined when it is not a WIRE.md topic. */
export function parseTopic(prefix: string, topic: string): { kind: TopicKindValue; id: string } | undefined {
  if (!topic.startsWith(prefix + '/v1/')) return undefined;
  const parts = topic.slice(prefix.length + 4).split('/');
  if (parts.length === 2) {
    if (!isDeviceId(parts[1])) return undefined;
    if (parts[0] === 'hello') return { kind: TopicKind.hello, id: parts[1] };
    if (parts[0] === 'pair') return { kind: TopicKind.pair, id: parts[1] };
    return undefined;
  }
  if (parts.length === 3 && parts[0] === 'd' && isDeviceId(parts[1])) {
    if (parts[2] === 'up') return { kind: TopicKind.up, id: parts[1] };
    if (parts[2] === 'down') return { kind: TopicKind.down, id: parts[1] };
    if (parts[2] === 'lwt') return { kind: TopicKind.lwt, id: parts[1] };
  }
  return undefined;
}
