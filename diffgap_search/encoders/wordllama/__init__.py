"""WordLlama: a static text-embedding model whose weights and tokenizer ship inside its wheel (text only)."""
