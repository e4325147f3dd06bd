package shop

import (
	"fmt"
	"strings"
)

// Product is an item of the catalogue.
type Product struct {
	ID          int64  `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Category    string `json:"category"`
	Description string `json:"description"`
	PriceCents  int64  `json:"price_cents"`
	Stock       int32  `json:"stock"`
}

// Categories returns the categories of the seeded catalogue, in display
// order.
func Categories() []string {
	return []string{"rings", "necklaces", "earrings", "bracelets", "pendants", "brooches"}
}

// CatalogueSize is the number of seeded products.
const CatalogueSize = 360

// Catalogue returns the seeded products: CatalogueSize jewellery items,
// the same on every call and every machine.
func Catalogue() []Product {
	metals := []string{"Gold", "Silver", "Platinum", "Rose Gold", "White Gold"}
	stones := []string{"Diamond", "Sapphire", "Ruby", "Emerald", "Pearl", "Opal", "Amethyst", "Topaz", "Garnet", "Onyx", "Aquamarine", "Peridot"}
	items := map[string]string{
		"rings": "Ring", "necklaces": "Necklace", "earrings": "Earrings",
		"bracelets": "Bracelet", "pendants": "Pendant", "brooches": "Brooch",
	}
	categories := Categories()
	products := make([]Product, 0, CatalogueSize)
	for i := range CatalogueSize {
		cat := categories[i%len(categories)]
		metal := metals[(i/len(categories))%len(metals)]
		stone := stones[(i/(len(categories)*len(metals)))%len(stones)]
		id := int64(i + 1)
		products = append(products, Product{
			ID:          id,
			SKU:         fmt.Sprintf("JS-%04d", id),
			Name:        fmt.Sprintf("%s %s %s", metal, stone, items[cat]),
			Category:    cat,
			Description: fmt.Sprintf("Handcrafted %s %s set with %s.", strings.ToLower(metal), strings.ToLower(items[cat]), strings.ToLower(stone)),
			PriceCents:  4900 + (id*7919)%250000,
			Stock:       int32(20 + (id*31)%80),
		})
	}
	return products
}
