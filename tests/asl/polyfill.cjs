// Promise.withResolvers (Node 22) for Node 18 and 20, which aws-local-stepfunctions 3 calls in every Task
// state. Load it before the interpreter: NODE_OPTIONS="--require <this file>" (tests/it/asl_exec.rs
// does). A no-op where the runtime has it.
'use strict';

if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers() {
      let resolve;
      let reject;
      const promise = new this((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}
