0function ok(a: number) {
  return a + 2;
}

function broken(b: number {
  return b * 2;
}

const tail = 1;
const more = 2;
