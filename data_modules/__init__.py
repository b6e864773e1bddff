"""Lightning DataModules, official-format readers, video IO and the embedded benchmark."""
