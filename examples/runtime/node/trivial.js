// The smallest useful run(): used by the benchmark.
exports.init = () => {};
exports.run = (input) => input;
