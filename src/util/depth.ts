/** Nested no deeper than `max` objects and arrays, checked without recursion (a file can nest 100,000 deep, past any recursive walk). */
export function nestedWithin(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (d >= max) return false;
    for (const y of Object.values(x)) stack.push([y, d + 1]);
  }
  return true;
}
