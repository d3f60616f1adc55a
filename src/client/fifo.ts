// A queue for the producer's chunks and the consume stream's read-ahead.

/** A first-in first-out queue with O(1) shift (Array.prototype.shift copies). */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T {
    if (this.size === 0) throw new RangeError('empty queue');
    return this.items[this.head] as T;
  }

  shift(): T {
    const item = this.peek();
    this.items[this.head] = undefined as T;
    this.head++;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
