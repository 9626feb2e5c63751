// ES module entry script with an async run().
export function init() {}
export async function run(input) {
  await new Promise((r) => setTimeout(r, 1));
  if (input.action === 'crash') process.exit(9);
  if (input.action === 'sleep') { await new Promise((r) => setTimeout(r, input.ms)); return { slept: input.ms }; }
  if (input.action === 'raise') throw new Error('bad input');
  return { upper: String(input.text).toUpperCase() };
}
