import 'reflect-metadata';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Container, ContainerModule } from 'inversify';
import { id, optional, provide, replace, resolve } from './container.js';

const NAME = id<string>('name');
const GREETING = id<string>('greeting');
const TITLE = id<string>('title');
const PARTS = id<string>('part');

const module = new ContainerModule(({ bind }) => {
  provide(bind, NAME, [], async () => 'xen-1');
  provide(bind, GREETING, [NAME, optional(TITLE)], (name, title) => `hello ${title ? `${title} ` : ''}${name} (${++made})`);
  provide(bind, PARTS, [], () => 'first');
  provide(bind, PARTS, [NAME], (name) => `second of ${name}`);
});
let made = 0;

test('provide: one instance, made from its (async, optional) dependencies; multi-bound in binding order', async () => {
  const c = new Container();
  c.load(module);
  assert.equal(await resolve(c, GREETING), 'hello xen-1 (1)');
  assert.equal(await resolve(c, GREETING), 'hello xen-1 (1)', 'a singleton');
  assert.deepEqual(await c.getAllAsync(PARTS), ['first', 'second of xen-1']);
});

test('replace: a double instead of what the module bound, or beside it', async () => {
  const c = new Container();
  c.load(module);
  replace(c, NAME, 'fake-host');
  replace(c, TITLE, 'dear');
  assert.equal(await resolve(c, GREETING), 'hello dear fake-host (2)');
});
