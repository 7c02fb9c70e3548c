0export class Queue<T> {
  private items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  push(item: T, front = false): void {
    if (front) this.items.unshift(item);
    else this.items.push(item);
  }

  pop(): T | undefined {
    return this.items.shift();
  }
}

interface Named { name: string }
type Key = string;
export enum Mode { Fast, Safe }
