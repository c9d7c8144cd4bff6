from us3l.cli import console_main

console_main()
