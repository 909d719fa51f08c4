import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { compactListeners, fastTable, LazyInflight, swapListener } from '../../gateway/broker.js';

test('LazyInflight answers has, add, delete and size as a Set does, over a random run of ids', () => {
  const lazy = new LazyInflight();
  const set = new Set<number>();
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 9;
  for (let i = 0; i < 2000; i++) {
    const id = next();
    const op = next() % 3;
    if (op === 0) assert.is(lazy.add(id), lazy);
    if (op === 0) set.add(id);
    if (op === 1) assert.is(lazy.delete(id), set.delete(id), `delete ${id} at step ${i}`);
    assert.is(lazy.has(id), set.has(id), `has ${id} at step ${i}`);
    assert.is(lazy.size, set.size, `size at step ${i}`);
  }
});

test('fastTable keeps the keys, values and order of a table of events, and no inherited name reads as a key', () => {
  const e = new EventEmitter();
  const calls: string[] = [];
  e.on('b', () => calls.push('b1'));
  e.on('a', () => calls.push('a'));
  e.on('b', () => calls.push('b2'));
  const sym = Symbol('s');
  e.on(sym, () => calls.push('sym'));
  const ev = e as unknown as { _events: object };
  const before = Reflect.ownKeys(ev._events);
  ev._events = fastTable(ev._events);
  assert.equal(Reflect.ownKeys(ev._events), before);
  assert.is(Object.getPrototypeOf(ev._events), null);
  for (const name of ['constructor', 'toString', 'hasOwnProperty']) assert.is(e.listenerCount(name), 0, name);
  e.emit('b');
  e.emit('a');
  e.emit(sym);
  e.emit('constructor');
  assert.equal(calls, ['b1', 'b2', 'a', 'sym']);
  e.removeAllListeners('b');
  e.once('c', () => calls.push('c'));
  e.emit('c');
  e.emit('c');
  assert.equal(calls.slice(4), ['c']);
  const dups = fastTable(Object.create(null) as Record<string, number>);
  dups['__proto__'] = 3;
  assert.is(dups['__proto__'], 3, 'a key named __proto__ is a key like any other');
  assert.is(Object.getPrototypeOf(dups), null);
});

test('swapListener puts a shared listener in place of the one named, at its place; refuses when the name is not there once', () => {
  const e = new EventEmitter();
  const calls: string[] = [];
  const target = { emit: (_: string, x: unknown) => calls.push(`bound ${String(x)}`) };
  e.on('error', () => calls.push('first'));
  e.on('error', target.emit.bind(target, 'error') as (x: unknown) => void);
  e.on('error', () => calls.push('last'));
  let self: unknown;
  const shared = function (this: unknown, x: unknown) {
    self = this;
    calls.push(`shared ${String(x)}`);
  };
  assert.ok(swapListener(e, 'error', 'bound emit', shared));
  e.emit('error', 1);
  assert.equal(calls, ['first', 'shared 1', 'last']);
  assert.is(self, e, 'called on the emitter');
  assert.not.ok(swapListener(e, 'error', 'bound emit', shared), 'nothing of that name left');
  const one = new EventEmitter();
  one.on('end', target.emit.bind(target, 'end') as (x: unknown) => void);
  assert.ok(swapListener(one, 'end', 'bound emit', shared));
  one.emit('end', 2);
  assert.equal(calls.at(-1), 'shared 2');
  assert.is(self, one);
  const two = new EventEmitter();
  two.on('x', target.emit.bind(target, 'x') as (x: unknown) => void);
  two.on('x', target.emit.bind(target, 'x') as (x: unknown) => void);
  assert.not.ok(swapListener(two, 'x', 'bound emit', shared), 'two of that name: which one is not known');
  assert.not.ok(swapListener(two, 'none', 'bound emit', shared));
});

test('compactListeners keeps an emitter\'s listeners, their order and once', () => {
  const e = new EventEmitter();
  const calls: string[] = [];
  for (let i = 0; i < 5; i++) e.on('end', () => calls.push(`gone${i}`));
  for (const l of e.rawListeners('end').slice(0, 3)) e.removeListener('end', l as () => void);
  e.once('end', () => calls.push('once'));
  compactListeners(e, 'end');
  assert.is(e.listenerCount('end'), 3);
  e.emit('end');
  e.emit('end');
  assert.equal(calls, ['gone3', 'gone4', 'once', 'gone3', 'gone4']);
});

test.run();
