import { defineConfig } from "vitest/config";
export default defineConfig({
  test: { globals: true, include: ["validation.test.mjs"], testTimeout: 30000, hookTimeout: 30000, fileParallelism: false },
});
