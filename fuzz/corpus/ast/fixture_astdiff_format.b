0import {readFile} from "node:fs/promises"

/* Loads a
   config file. */
export async function load(path: string): Promise<Config> {
    const text = await readFile((path), "utf8")
    const parsed = JSON.parse(text)
    return {
        name: parsed.name,
        retries: parsed.retries ?? 3,
    }
}
export const limits = [
    1,
    2,
    3,
];
