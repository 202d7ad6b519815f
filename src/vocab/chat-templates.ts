/**
 * @file `chat_template:` in a recipe. mergekit accepts "auto" (the template most of the inputs share),
 * the name of a template it ships (alpaca, chatml, llama3, mistral, exaone), or a literal Jinja string,
 * which it rejects when shorter than 20 characters or without a "{". weightsoup also parses a literal
 * template with @huggingface/jinja (what renders chat prompts in src/tokenizer), so a template that
 * could never render fails before the merge rather than in whoever loads the output.
 *
 * The built-in templates are written here from each format's published layout (the same turn markers
 * and generation prompts as the families' own templates).
 */
import { Template } from "@huggingface/jinja";
import { describeValue, RecipeError } from "../errors";
import { table } from "../table";

export type ChatTemplateSetting =
  | { kind: "auto" }
  | { kind: "builtin"; name: string; source: string }
  | { kind: "literal"; source: string };

export const BUILTIN_CHAT_TEMPLATES: Readonly<Record<string, string>> = table({
  alpaca:
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}" +
    "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}" +
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
  chatml:
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  llama3:
    "{{ bos_token }}{% for message in messages %}" +
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + (message['content'] | trim) + '<|eot_id|>' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  mistral:
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}" +
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
  exaone:
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{{ '[|system|][|endofturn|]\\n' }}{% endif %}" +
    "{{ '[|' + message['role'] + '|]' + message['content'] }}" +
    "{% if message['role'] == 'user' %}{{ '\\n' }}{% else %}{{ '[|endofturn|]\\n' }}{% endif %}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}",
});

/** Checks a recipe's chat_template value; a broken one is E_CHAT_TEMPLATE naming the recipe key. */
export function checkChatTemplate(value: unknown, file: string): ChatTemplateSetting {
  const fail = (what: string, cause?: unknown) =>
    new RecipeError("E_CHAT_TEMPLATE", `${file}: chat_template: ${what}`, { file, key: "chat_template" }, cause === undefined ? undefined : { cause });
  if (typeof value !== "string") throw fail(`must be "auto", a built-in name (${Object.keys(BUILTIN_CHAT_TEMPLATES).join(", ")}) or a Jinja template, found ${describeValue(value)}`);
  if (value === "auto") return { kind: "auto" };
  const builtin = BUILTIN_CHAT_TEMPLATES[value];
  if (builtin !== undefined) return { kind: "builtin", name: value, source: builtin };
  if (value.length < 20 || !value.includes("{")) {
    throw fail(`${describeValue(value)} is neither a built-in template (auto, ${Object.keys(BUILTIN_CHAT_TEMPLATES).join(", ")}) nor a Jinja template (one has at least 20 characters and a "{")`);
  }
  try {
    new Template(value);
  } catch (cause) {
    throw fail(`the Jinja template cannot be parsed: ${(cause as Error).message}`, cause);
  }
  return { kind: "literal", source: value };
}
