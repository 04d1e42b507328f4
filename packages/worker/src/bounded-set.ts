/**
 * A set that forgets its oldest entries past `max`: what the worker remembers about refused
 * artifacts (blocked pairs, refusals already reported) stays bounded however much junk a
 * store holds or how long it keeps changing. Forgetting is safe for both: a blocked pair is
 * verified (and refused) again, a refusal is reported again.
 */
export class BoundedSet<T> {
  readonly #items = new Set<T>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  has(item: T): boolean {
    return this.#items.has(item);
  }

  /** Adds `item`; true if it was not there (the first time it is seen, or since forgotten). */
  add(item: T): boolean {
    if (this.#items.has(item)) return false;
    this.#items.add(item);
    if (this.#items.size > this.#max) this.#items.delete(this.#items.values().next().value as T);
    return true;
  }

  delete(item: T): void {
    this.#items.delete(item);
  }

  get size(): number {
    return this.#items.size;
  }
}
