// TypeScript entry script (transpiled on load).
interface Input { a: number; b: number }
let offset = 0;
export function init(): void {
  offset = 100;
}
export function run(input: Input | Input[]): number | number[] {
  if (Array.isArray(input)) return input.map((i) => i.a + i.b + offset);
  return input.a + input.b + offset;
}
