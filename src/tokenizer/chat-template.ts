/**
 * @file The prompt text a model's chat template makes of a conversation, as transformers'
 * apply_chat_template(messages, tokenize=False, add_generation_prompt=True) renders it: the template
 * from chat_template.jinja (transformers 5's layout) or else tokenizer_config.json's chat_template (a
 * string, or a list of named templates of which "default" is used), rendered by @huggingface/jinja with
 * the special tokens' text (bos_token, eos_token, ...; the class's defaults where tokenizer_config.json
 * names none) as variables. The rendered text already holds
 * whatever special tokens the template writes, so it is encoded without adding more.
 */
import { Template } from "@huggingface/jinja";
import type { TokenizerFiles } from "./files";
import { tokenizerError } from "./files";
import { usePythonStringMethods } from "./jinja-compat";
import { namedSpecialTokens, specialTokenText } from "./special-tokens";

export interface ChatMessage {
  role: string;
  content: string;
}

/** The template source and the file it came from, or undefined when the model has none. */
export function chatTemplateSource(files: TokenizerFiles): { source: string; file: string } | undefined {
  if (files.chatTemplateFile !== undefined) return { source: files.chatTemplateFile, file: files.chatTemplatePath };
  const value = files.tokenizerConfig.chat_template;
  if (typeof value === "string") return { source: value, file: files.tokenizerConfigPath };
  if (Array.isArray(value)) {
    const named = value.find((t) => t !== null && typeof t === "object" && (t as { name?: unknown }).name === "default") as { template?: unknown } | undefined;
    if (typeof named?.template === "string") return { source: named.template, file: files.tokenizerConfigPath };
  }
  return undefined;
}

/** A renderer for the folder's chat template (compiled on first use), or undefined without one. */
export function chatRenderer(files: TokenizerFiles): ((messages: readonly ChatMessage[]) => string) | undefined {
  const found = chatTemplateSource(files);
  if (found === undefined) return undefined;
  // The named special tokens' text, as transformers passes its special_tokens_map (no list of extra ones).
  const variables: Record<string, unknown> = Object.create(null);
  for (const [key, value] of namedSpecialTokens(files.tokenizerConfig)) {
    const text = specialTokenText(value);
    if (typeof text === "string") variables[key] = text;
  }
  let template: Template | undefined;
  return (messages) => {
    if (messages.length === 0) throw tokenizerError(found.file, "a chat prompt needs at least one message");
    usePythonStringMethods();
    try {
      template ??= new Template(found.source);
    } catch (cause) {
      throw tokenizerError(found.file, `the chat template cannot be parsed: ${(cause as Error).message}`, { key: "chat_template" }, cause);
    }
    try {
      return template.render({
        ...variables,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: true,
        // transformers always passes these, None without tools or documents: `tools is defined` is true
        // and `tools is not none` false in its templates, as they are here.
        tools: null,
        documents: null,
      });
    } catch (cause) {
      // raise_exception() in a template (roles that do not alternate, a system message it refuses) lands here.
      throw tokenizerError(found.file, `the chat template refused the conversation: ${(cause as Error).message}`, { key: "chat_template" }, cause);
    }
  };
}
