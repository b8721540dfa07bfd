# The words of the built-in pages in English: the catalogue every other language is compared with, and falls back to.
# A new language is a copy of this file named by its code (de.ftl, fr.ftl, pt-BR.ftl) with every value translated.
language-name = English
language-choice = Language
logo-alt = { $product } logo
