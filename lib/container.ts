// Typed service identifiers for the daemons' inversify containers (node-agent/container/,
// operator/container/). inversify's own identifiers carry no type: `Id<T>` does, so a factory's
// dependencies and `get` are checked against what is bound.
import type { Bind, Container } from 'inversify';

/** A service identifier that says what is bound to it. */
export type Id<T> = symbol & { readonly __bound?: T };

/** A dependency: a service, or an optional one (undefined when nothing is bound). */
type Dep<T> = (symbol | { serviceIdentifier: symbol; optional: true }) & { readonly __bound?: T };

export const id = <T>(name: string): Id<T> => Symbol(name) as Id<T>;

/** `service` when something is bound to it, otherwise undefined. */
export const optional = <T>(service: Id<T>): Dep<T | undefined> => ({ serviceIdentifier: service, optional: true }) as Dep<T | undefined>;

/**
 * Binds `service` to one instance (singleton scope), made by `make` from the services `deps` name.
 * Bound again, a service is multi-bound: `getAllAsync` returns its instances in binding order.
 */
export function provide<T, A extends unknown[]>(
  bind: Bind,
  service: Id<T>,
  deps: [...{ [K in keyof A]: Dep<A[K]> }],
  make: (...args: A) => T | Promise<T>,
): void {
  bind<T>(service)
    .toResolvedValue(make, deps as never)
    .inSingletonScope();
}

/** The instance bound to `service` (factories may be async). */
export const resolve = <T>(container: Container, service: Id<T>): Promise<T> => container.getAsync<T>(service);

/** Binds `service` to `value`, replacing what a module bound: how tests and benchmarks put in their doubles. */
export function replace<T>(container: Container, service: Id<T>, value: T): void {
  (container.isBound(service) ? container.rebind<T>(service) : container.bind<T>(service)).toConstantValue(value);
}
