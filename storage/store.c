/* storage: see store.h */
