0export function total(items: number[]): number {
  let acc = 0;
  for (const item of items) {
    acc += item;
  }
  return acc;
}

export function count(items: number[]): number {
  let sum = items.length;
  return sum;
}
